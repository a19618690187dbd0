//! steadyllm on a Raspberry Pi Pico W (RP2040 + CYW43439 Wi-Fi).
//!
//! Joins the Wi-Fi network given at build time, gets an address by DHCP, and streams a chat
//! completion from `STEADYLLM_BASE_URL` to the defmt log every 30 s; the library logs every
//! retry, backoff and failover. See `../README.md` for the settings and how to flash it.
#![no_std]
#![no_main]

#[path = "../../common/app.rs"]
mod app;

use cyw43::JoinOptions;
use cyw43_pio::{DEFAULT_CLOCK_DIVIDER, PioSpi};
use defmt_rtt as _;
use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{DMA_CH0, PIO0};
use embassy_rp::pio::{InterruptHandler as PioIrq, Pio};
use embassy_rp::{bind_interrupts, dma};
use embassy_time::{Duration, Timer};
use panic_probe as _;
use static_cell::StaticCell;

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => PioIrq<PIO0>;
    DMA_IRQ_0 => dma::InterruptHandler<DMA_CH0>;
});

type WifiRunner = cyw43::Runner<'static, cyw43::SpiBus<Output<'static>, PioSpi<'static, PIO0, 0>>>;

#[embassy_executor::task]
async fn wifi_task(runner: WifiRunner) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, cyw43::NetDriver<'static>>) -> ! {
    runner.run().await
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    let mut rng = RoscRng;
    let Some(ssid) = app::WIFI_SSID else {
        app::halt("WIFI_SSID was not set at build time: rebuild with WIFI_SSID=... WIFI_PASSWORD=... STEADYLLM_BASE_URL=... cargo build --release").await
    };

    // The CYW43439 sits on a PIO-driven SPI bus: power on GPIO 23, chip select on 25,
    // data on 24, clock on 29.
    let pwr = Output::new(p.PIN_23, Level::Low);
    let cs = Output::new(p.PIN_25, Level::High);
    let mut pio = Pio::new(p.PIO0, Irqs);
    let spi = PioSpi::new(
        &mut pio.common,
        pio.sm0,
        DEFAULT_CLOCK_DIVIDER,
        pio.irq0,
        cs,
        p.PIN_24,
        p.PIN_29,
        dma::Channel::new(p.DMA_CH0, Irqs),
    );
    static WIFI_STATE: StaticCell<cyw43::State> = StaticCell::new();
    let (net_device, mut control, runner) = cyw43::new(
        WIFI_STATE.init(cyw43::State::new()),
        pwr,
        spi,
        &cyw43_setup::FW,
        &cyw43_setup::NVRAM,
    )
    .await;
    spawner.spawn(wifi_task(runner).unwrap());
    control.init(cyw43_setup::CLM).await;
    control
        .set_power_management(cyw43::PowerManagementMode::PowerSave)
        .await;

    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, net_runner) = embassy_net::new(
        net_device,
        config,
        RESOURCES.init(StackResources::new()),
        rng.next_u64(),
    );
    spawner.spawn(net_task(net_runner).unwrap());

    loop {
        let options = if app::WIFI_PASSWORD.is_empty() {
            JoinOptions::new_open()
        } else {
            JoinOptions::new(app::WIFI_PASSWORD.as_bytes())
        };
        match control.join(ssid, options).await {
            Ok(()) => break,
            Err(e) => {
                defmt::warn!("joining {=str} failed ({}); retrying in 2 s", ssid, e);
                Timer::after(Duration::from_secs(2)).await;
            }
        }
    }
    defmt::info!("joined {=str}", ssid);
    #[cfg(feature = "tls")]
    let tls_rng = {
        static CSPRNG: StaticCell<rand_chacha::ChaCha20Rng> = StaticCell::new();
        CSPRNG.init(conditioned_rosc_csprng())
    };
    app::run(
        stack,
        rng.next_u64(),
        #[cfg(feature = "tls")]
        tls_rng,
    )
    .await
}

/// The RP2040 has no TRNG. Its ring oscillator's RANDOMBIT is a physical noise source, but a
/// weak and biased one (the datasheet warns against using it directly): 16 384 raw bits are
/// hashed with SHA-256 into a 256-bit seed (assuming at least 1 bit of entropy per 64 raw
/// bits), which seeds ChaCha20, a CSPRNG, for the TLS handshakes.
#[cfg(feature = "tls")]
fn conditioned_rosc_csprng() -> rand_chacha::ChaCha20Rng {
    use rand_chacha::rand_core::SeedableRng;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut raw = [0u8; 64];
    for _ in 0..32 {
        for b in raw.iter_mut() {
            *b = RoscRng::next_u8();
        }
        h.update(raw);
    }
    rand_chacha::ChaCha20Rng::from_seed(h.finalize().into())
}
