//! steadyllm on an ESP32-C3 (RISC-V, built-in Wi-Fi).
//!
//! Joins the Wi-Fi network given at build time, gets an address by DHCP, and streams a chat
//! completion from `STEADYLLM_BASE_URL` to the defmt log every 30 s; the library logs every
//! retry, backoff and failover. See `../README.md` for the settings and how to flash it.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../../common/app.rs"]
mod app;

use embassy_executor::Spawner;
use embassy_net::StackResources;
use embassy_time::{Duration, Timer};
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_println as _;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Config, Interface, WifiController};
use static_cell::StaticCell;

// The image header the ESP-IDF second-stage bootloader checks.
esp_bootloader_esp_idf::esp_app_desc!();

#[embassy_executor::task]
async fn net_task(mut runner: embassy_net::Runner<'static, Interface>) -> ! {
    runner.run().await
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The Wi-Fi driver allocates (buffers, its own tasks); steadyllm does not.
    esp_alloc::heap_allocator!(size: 72 * 1024);
    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let Some(ssid) = app::WIFI_SSID else {
        app::halt("WIFI_SSID was not set at build time: rebuild with WIFI_SSID=... WIFI_PASSWORD=... STEADYLLM_BASE_URL=... cargo build --release").await
    };
    let rng = Rng::new();
    let seed = |rng: &Rng| (u64::from(rng.random()) << 32) | u64::from(rng.random());

    let mut controller = match WifiController::new(peripherals.WIFI, Default::default()) {
        Ok(c) => c,
        Err(e) => {
            defmt::error!("Wi-Fi init failed: {}", e);
            app::halt("Wi-Fi init failed").await
        }
    };
    let auth = if app::WIFI_PASSWORD.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        match app::WIFI_PASSWORD.try_into() {
            Ok(p) => AuthenticationMethodConfig::Wpa2Personal(p),
            Err(_) => app::halt("WIFI_PASSWORD is too long").await,
        }
    };
    let Ok(ssid_config) = ssid.try_into() else {
        app::halt("WIFI_SSID is too long").await
    };
    let station = Config::Station(
        StationConfig::default()
            .with_ssid(ssid_config)
            .with_authentication(auth),
    );
    if let Err(e) = controller.set_config(&station) {
        defmt::error!("Wi-Fi configuration refused: {}", e);
        app::halt("Wi-Fi configuration refused").await;
    }

    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let config = embassy_net::Config::dhcpv4(Default::default());
    let (stack, net_runner) = embassy_net::new(
        Interface::station(),
        config,
        RESOURCES.init(StackResources::new()),
        seed(&rng),
    );
    spawner.spawn(net_task(net_runner).unwrap());

    loop {
        match controller.connect_async().await {
            Ok(_) => break,
            Err(e) => {
                defmt::warn!("joining {=str} failed ({}); retrying in 2 s", ssid, e);
                Timer::after(Duration::from_secs(2)).await;
            }
        }
    }
    defmt::info!("joined {=str}", ssid);
    // TLS secrets come from the true RNG: with the radio running, the RNG is fed by RF noise
    // (esp-radio enables the entropy source); `Trng` refuses to exist otherwise.
    #[cfg(feature = "tls")]
    let tls_rng = {
        static TRNG: StaticCell<esp_hal::rng::Trng> = StaticCell::new();
        match esp_hal::rng::Trng::try_new() {
            Ok(t) => TRNG.init(t),
            Err(_) => app::halt("no entropy source for TLS (is the radio running?)").await,
        }
    };
    app::run(
        stack,
        seed(&rng),
        #[cfg(feature = "tls")]
        tls_rng,
    )
    .await
}
