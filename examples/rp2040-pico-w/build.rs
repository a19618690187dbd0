//! memory.x for the linker; the CA certificate from STEADYLLM_CA_DER_PATH; early, clear
//! errors for settings that cannot work.
#[path = "../common/build_support.rs"]
mod build_support;

fn main() {
    build_support::memory_x();
    build_support::settings();
}
