//! The CA certificate from STEADYLLM_CA_DER_PATH; early, clear errors for settings that cannot
//! work. (esp-hal brings its own linker scripts and memory layout.)
#[path = "../common/build_support.rs"]
mod build_support;

fn main() {
    build_support::settings();
}
