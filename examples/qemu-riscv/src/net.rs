//! QEMU's virtio-net device (virtio-mmio) behind embassy-net's driver trait, with the
//! `virtio-drivers` crate's allocation-free `VirtIONetRaw`.
//!
//! Memory is identity-mapped and there is no allocator: the virtqueues come from a static
//! page arena, the receive buffers are static. Receiving: every buffer sits in the device's
//! receive queue; a completed one is copied out for embassy-net and handed straight back.
//! Sending is synchronous (the driver waits for the device to take the frame). A received
//! frame raises the device's interrupt through the board's PLIC; the handler acknowledges it
//! and wakes embassy-net's runner.

use core::ptr::{NonNull, read_volatile, write_volatile};
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::Context;

use embassy_net_driver::{Capabilities, HardwareAddress, LinkState, RxToken, TxToken};
use embassy_sync::waitqueue::AtomicWaker;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// Descriptors per virtqueue.
const QUEUE: usize = 16;
/// Receive buffers kept in the device's queue.
const RX_BUFS: usize = 8;
/// One Ethernet frame (1514) plus the virtio-net header, rounded up.
const BUF: usize = 1536;
/// The largest frame embassy-net may send or receive (Ethernet header included, FCS not).
const MTU: usize = 1514;

// ---------------------------------------------------------------- DMA memory
const ARENA_PAGES: usize = 8;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_PAGES * PAGE_SIZE]);

static mut ARENA: Arena = Arena([0; ARENA_PAGES * PAGE_SIZE]);
static ARENA_USED: AtomicUsize = AtomicUsize::new(0);

/// Identity-mapped DMA for virtio-drivers: pages from the static arena, never returned (the
/// device lives as long as the firmware).
pub struct StaticHal;

// SAFETY: `dma_alloc` hands out distinct, zeroed, page-aligned ranges of a static arena;
// physical and virtual addresses are the same on this board (no MMU in M-mode).
unsafe impl Hal for StaticHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let start = critical_section::with(|_| {
            let used = ARENA_USED.load(Ordering::Relaxed);
            ARENA_USED.store(used + pages, Ordering::Relaxed);
            used
        });
        if start + pages > ARENA_PAGES {
            panic!("virtio DMA arena exhausted");
        }
        // SAFETY: pages `start..start + pages` of the arena were handed out to nobody else.
        let ptr = unsafe { (&raw mut ARENA.0).cast::<u8>().add(start * PAGE_SIZE) };
        // SAFETY: within the arena.
        unsafe { core::ptr::write_bytes(ptr, 0, pages * PAGE_SIZE) };
        let Some(ptr) = NonNull::new(ptr) else {
            panic!("null DMA page")
        };
        (ptr.as_ptr() as usize as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        match NonNull::new(paddr as usize as *mut u8) {
            Some(p) => p,
            None => panic!("null MMIO address"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

// ---------------------------------------------------------------- the device
type Device = VirtIONetRaw<StaticHal, MmioTransport<'static>, QUEUE>;

/// QEMU `virt`'s eight virtio-mmio slots.
const MMIO_BASE: usize = 0x1000_1000;
const MMIO_STRIDE: usize = 0x1000;
const MMIO_SLOTS: usize = 8;

/// Wakes embassy-net's runner when the device has used a buffer (see [`machine_external`]).
static RX_WAKER: AtomicWaker = AtomicWaker::new();

// ---------------------------------------------------------------- the device's interrupt
/// The PLIC of QEMU `virt`; context 0 is hart 0 in machine mode.
const PLIC: usize = 0x0C00_0000;
const PLIC_ENABLE_CTX0: usize = PLIC + 0x2000;
const PLIC_THRESHOLD_CTX0: usize = PLIC + 0x20_0000;
const PLIC_CLAIM_CTX0: usize = PLIC + 0x20_0004;
/// virtio-mmio slot `i` raises PLIC source `1 + i` on QEMU `virt`.
const FIRST_VIRTIO_IRQ: usize = 1;
/// virtio-mmio registers: which interrupts are pending, and their acknowledgement.
const MMIO_INTERRUPT_STATUS: usize = 0x60;
const MMIO_INTERRUPT_ACK: usize = 0x64;

/// The slot of the network device (`usize::MAX` until it is set up).
static NET_SLOT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Routes the device's interrupt to this hart (priority 1 over threshold 0) and enables
/// machine external interrupts.
fn enable_interrupt(slot: usize) {
    let irq = FIRST_VIRTIO_IRQ + slot;
    NET_SLOT.store(slot, Ordering::Relaxed);
    // SAFETY: PLIC registers of QEMU `virt` (source priority, context 0's enable bits and
    // threshold); this is the only code that writes them.
    unsafe {
        write_volatile((PLIC + 4 * irq) as *mut u32, 1);
        let enable = (PLIC_ENABLE_CTX0 + 4 * (irq / 32)) as *mut u32;
        write_volatile(enable, read_volatile(enable) | (1 << (irq % 32)));
        write_volatile(PLIC_THRESHOLD_CTX0 as *mut u32, 0);
        riscv::register::mie::set_mext();
    }
}

#[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineExternal)]
fn machine_external() {
    // SAFETY: claiming and completing on context 0 and acknowledging the virtio-mmio device's
    // interrupt are what the PLIC and virtio specifications ask of the handler.
    unsafe {
        let claim = read_volatile(PLIC_CLAIM_CTX0 as *const u32);
        let slot = NET_SLOT.load(Ordering::Relaxed);
        if claim as usize == FIRST_VIRTIO_IRQ + slot {
            let base = MMIO_BASE + slot * MMIO_STRIDE;
            let status = read_volatile((base + MMIO_INTERRUPT_STATUS) as *const u32);
            write_volatile((base + MMIO_INTERRUPT_ACK) as *mut u32, status);
            RX_WAKER.wake();
        }
        if claim != 0 {
            write_volatile(PLIC_CLAIM_CTX0 as *mut u32, claim);
        }
    }
}

/// Why the network device could not be brought up.
#[derive(Debug)]
pub enum NetInitError {
    /// No virtio-net device in any virtio-mmio slot (QEMU needs `-device virtio-net-device`).
    NoDevice,
    /// The driver refused the device.
    Driver(virtio_drivers::Error),
}

/// The embassy-net driver over the virtio-net device.
pub struct VirtioNet {
    dev: Device,
    rx: &'static mut [[u8; BUF]; RX_BUFS],
    /// The virtqueue token of each receive buffer.
    rx_token: [u16; RX_BUFS],
    /// The frame being handed to embassy-net (copied out of the receive buffer).
    frame: &'static mut [u8; BUF],
    frame_len: usize,
    tx: &'static mut [u8; BUF],
}

impl VirtioNet {
    /// Finds the virtio-net device, initializes it and fills its receive queue.
    pub fn new(
        rx: &'static mut [[u8; BUF]; RX_BUFS],
        frame: &'static mut [u8; BUF],
        tx: &'static mut [u8; BUF],
    ) -> Result<Self, NetInitError> {
        let mut found = None;
        for slot in 0..MMIO_SLOTS {
            let Some(header) = NonNull::new((MMIO_BASE + slot * MMIO_STRIDE) as *mut VirtIOHeader)
            else {
                continue;
            };
            // SAFETY: a virtio-mmio slot of QEMU `virt` (0x1000 bytes of registers and
            // config space), used by nothing else.
            if let Ok(t) = unsafe { MmioTransport::new(header, MMIO_STRIDE) }
                && t.device_type() == DeviceType::Network
            {
                found = Some((slot, t));
                break;
            }
        }
        let (slot, transport) = found.ok_or(NetInitError::NoDevice)?;
        let dev = Device::new(transport).map_err(NetInitError::Driver)?;
        let mut net = VirtioNet {
            dev,
            rx,
            rx_token: [0; RX_BUFS],
            frame,
            frame_len: 0,
            tx,
        };
        for i in 0..RX_BUFS {
            net.rx_token[i] = net.submit(i)?;
        }
        enable_interrupt(slot);
        Ok(net)
    }

    fn submit(&mut self, i: usize) -> Result<u16, NetInitError> {
        // SAFETY: buffer `i` is not touched again until the device returns it (its token
        // comes back from `poll_receive`).
        unsafe { self.dev.receive_begin(&mut self.rx[i]) }.map_err(NetInitError::Driver)
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.dev.mac_address()
    }

    /// Takes one received frame into `frame`, if any, and gives its buffer back to the device.
    fn take_frame(&mut self) -> bool {
        let Some(token) = self.dev.poll_receive() else {
            return false;
        };
        let Some(i) = self.rx_token.iter().position(|&t| t == token) else {
            panic!("virtio-net returned an unknown receive token");
        };
        // SAFETY: buffer `i` was submitted with this token.
        let done = unsafe { self.dev.receive_complete(token, &mut self.rx[i]) };
        self.frame_len = 0;
        if let Ok((header, len)) = done
            && let Some(data) = self.rx[i].get(header..header + len)
            && len <= self.frame.len()
        {
            self.frame[..len].copy_from_slice(data);
            self.frame_len = len;
        }
        match self.submit(i) {
            Ok(t) => self.rx_token[i] = t,
            Err(_) => panic!("virtio-net receive queue refused a buffer"),
        }
        self.frame_len > 0
    }
}

/// A received frame, borrowed until embassy-net has read it.
pub struct Rx<'a>(&'a mut [u8]);

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Room for one frame to send; sent when embassy-net has written it.
pub struct Tx<'a> {
    dev: &'a mut Device,
    buf: &'a mut [u8; BUF],
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.buf[..len.min(MTU)];
        let r = f(frame);
        // A frame the device refuses is dropped, as on a wire; TCP sends it again.
        let _ = self.dev.send(frame);
        r
    }
}

impl embassy_net_driver::Driver for VirtioNet {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context) -> Option<(Rx<'_>, Tx<'_>)> {
        RX_WAKER.register(cx.waker());
        if !self.take_frame() {
            return None;
        }
        let len = self.frame_len;
        Some((
            Rx(&mut self.frame[..len]),
            Tx {
                dev: &mut self.dev,
                buf: self.tx,
            },
        ))
    }

    fn transmit(&mut self, _cx: &mut Context) -> Option<Tx<'_>> {
        Some(Tx {
            dev: &mut self.dev,
            buf: self.tx,
        })
    }

    fn link_state(&mut self, _cx: &mut Context) -> LinkState {
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac())
    }
}
