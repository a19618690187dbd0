//! Writes the build time into `STEADYLLM_BUILD_UNIX`: the floor of the TLS time policy (a
//! certificate that expired before the firmware was built is refused even without a clock).
//! `SOURCE_DATE_EPOCH` overrides it for reproducible builds; either way it is a time the true
//! time is never before.

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=STEADYLLM_BUILD_UNIX={now}");
}
