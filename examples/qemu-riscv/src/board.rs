//! The parts of QEMU's `virt` board this firmware uses (all memory-mapped, hart 0, M-mode):
//! the 16550 UART, the CLINT timer (an embassy-time driver on `mtime`/`mtimecmp`), the test
//! device that ends the emulation with an exit status, and `fw_cfg` (settings the script passes
//! on QEMU's command line). Plus stack painting, for the peak stack use.

use core::cell::RefCell;
use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_time_driver::Driver;
use embassy_time_queue_utils::Queue;

// ---------------------------------------------------------------- UART (16550 at 0x1000_0000)
const UART: usize = 0x1000_0000;
const UART_LSR: usize = UART + 5;
const LSR_THR_EMPTY: u8 = 0x20;

/// The board's serial port, for the JSON lines. Blocking writes, one byte at a time.
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: the 16550's registers on QEMU `virt`; only this firmware's one thread
            // writes them.
            unsafe {
                while read_volatile(UART_LSR as *const u8) & LSR_THR_EMPTY == 0 {}
                write_volatile(UART as *mut u8, b);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- exit (SiFive test device)
const TEST_DEVICE: usize = 0x0010_0000;

/// Ends the emulation: QEMU exits with `status` (0 = success).
pub fn exit(status: u16) -> ! {
    let value = if status == 0 {
        0x5555
    } else {
        (u32::from(status) << 16) | 0x3333
    };
    // SAFETY: the test device's only register; writing it stops QEMU.
    unsafe { write_volatile(TEST_DEVICE as *mut u32, value) };
    loop {
        riscv::asm::wfi();
    }
}

// ---------------------------------------------------------------- CLINT time driver
const MTIMECMP: usize = 0x0200_4000;
const MTIME: usize = 0x0200_BFF8;

/// `mtime`, 10 MHz on QEMU `virt` (read as two halves, retried if the high half moved).
pub fn mtime() -> u64 {
    // SAFETY: the CLINT's `mtime` register, read-only here.
    unsafe {
        loop {
            let hi = read_volatile((MTIME + 4) as *const u32);
            let lo = read_volatile(MTIME as *const u32);
            if read_volatile((MTIME + 4) as *const u32) == hi {
                return (u64::from(hi) << 32) | u64::from(lo);
            }
        }
    }
}

/// Sets hart 0's `mtimecmp`: the timer interrupt is pending while `mtime >= at`.
fn set_mtimecmp(at: u64) {
    // SAFETY: hart 0's `mtimecmp`. The high half goes to its maximum first so that no
    // intermediate value (new low, old high) raises a spurious interrupt.
    unsafe {
        write_volatile((MTIMECMP + 4) as *mut u32, u32::MAX);
        write_volatile(MTIMECMP as *mut u32, at as u32);
        write_volatile((MTIMECMP + 4) as *mut u32, (at >> 32) as u32);
    }
}

/// embassy-time's driver: the clock is `mtime` (embassy-time's tick rate is set to 10 MHz in
/// Cargo.toml), alarms are `mtimecmp` and the machine timer interrupt.
struct ClintDriver {
    queue: Mutex<CriticalSectionRawMutex, RefCell<Queue>>,
}

impl ClintDriver {
    /// Wakes what is due and arms the compare register for the next deadline.
    fn rearm(&self, queue: &mut Queue) {
        let next = queue.next_expiration(mtime());
        set_mtimecmp(next);
    }
}

impl Driver for ClintDriver {
    fn now(&self) -> u64 {
        mtime()
    }

    fn schedule_wake(&self, at: u64, waker: &core::task::Waker) {
        critical_section::with(|cs| {
            let mut queue = self.queue.borrow(cs).borrow_mut();
            if queue.schedule_wake(at, waker) {
                self.rearm(&mut queue);
            }
        });
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: ClintDriver = ClintDriver {
    queue: Mutex::new(RefCell::new(Queue::new())),
});

/// Enables the machine timer interrupt (and interrupts globally). No alarm is armed yet.
pub fn start_timer() {
    set_mtimecmp(u64::MAX);
    // SAFETY: the handler below is ready; nothing else runs before the executor.
    unsafe {
        riscv::register::mie::set_mtimer();
        riscv::interrupt::enable();
    }
}

#[riscv_rt::core_interrupt(riscv::interrupt::Interrupt::MachineTimer)]
fn machine_timer() {
    critical_section::with(|cs| {
        let mut queue = DRIVER.queue.borrow(cs).borrow_mut();
        DRIVER.rearm(&mut queue);
    });
}

// ---------------------------------------------------------------- settings
/// Where the script has QEMU place the settings file (`-device loader,file=…,addr=0x80700000,
/// force-raw=on`): in DRAM, above the 4 MiB code region and the 400 KiB RAM of memory.x.
const SETTINGS: usize = 0x8070_0000;
const SETTINGS_MAX: usize = 4096;

/// The settings text: `key=value` lines, up to the first NUL (QEMU's RAM starts zeroed, so
/// no file means no settings).
pub fn settings() -> &'static str {
    // SAFETY: a DRAM range outside every linker region, written only by QEMU's loader before
    // the firmware starts and never by the firmware.
    let bytes = unsafe { core::slice::from_raw_parts(SETTINGS as *const u8, SETTINGS_MAX) };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(SETTINGS_MAX);
    core::str::from_utf8(bytes.get(..len).unwrap_or_default()).unwrap_or_default()
}

/// The value of `key` in the settings (see [`settings`]).
pub fn setting(key: &str) -> Option<&'static str> {
    settings().lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

// ---------------------------------------------------------------- stack painting
const PAINT: u32 = 0x5AFE_57AC;

unsafe extern "C" {
    /// The lowest address of the stack region (riscv-rt's linker script).
    static __estack: u32;
    /// The top of the stack (riscv-rt's linker script).
    static __sstack: u32;
}

fn stack_bounds() -> (usize, usize) {
    // Only the symbols' addresses are taken.
    (
        core::ptr::addr_of!(__estack) as usize,
        core::ptr::addr_of!(__sstack) as usize,
    )
}

/// Fills the unused part of the stack (below the caller's frame) with a pattern.
#[inline(never)]
pub fn paint_stack() {
    let (bottom, _) = stack_bounds();
    let marker = 0u32;
    // Leave the frames of this call and its caller alone.
    let below = (core::ptr::addr_of!(marker) as usize - 256) & !3;
    let mut p = bottom;
    while p < below {
        // SAFETY: between the stack's lower bound and below the current frame: memory that no
        // live frame uses.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The deepest the stack has been since [`paint_stack`], in bytes, and the stack's size.
pub fn stack_peak() -> (usize, usize) {
    let (bottom, top) = stack_bounds();
    let mut p = bottom;
    // SAFETY: reads within the stack region, below the live frames.
    while p < top && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p, top - bottom)
}
