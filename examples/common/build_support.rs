//! Shared by the examples' build scripts.
use std::{env, fs, path::PathBuf};

fn out_dir() -> PathBuf {
    PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"))
}

/// Puts memory.x where the linker finds it.
#[allow(dead_code)]
pub fn memory_x() {
    fs::copy("memory.x", out_dir().join("memory.x")).expect("memory.x");
    println!("cargo:rustc-link-search={}", out_dir().display());
    println!("cargo:rerun-if-changed=memory.x");
}

/// Checks the build-time settings and copies the CA certificate to OUT_DIR/ca.der.
pub fn settings() {
    for var in [
        "WIFI_SSID",
        "WIFI_PASSWORD",
        "STEADYLLM_BASE_URL",
        "STEADYLLM_FALLBACK_URL",
        "STEADYLLM_API_KEY",
        "STEADYLLM_MODEL",
        "STEADYLLM_PROMPT",
        "STEADYLLM_CA_DER_PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let tls = env::var_os("CARGO_FEATURE_TLS").is_some();
    let https = |var: &str| env::var(var).is_ok_and(|u| u.starts_with("https://"));
    let any_https = https("STEADYLLM_BASE_URL") || https("STEADYLLM_FALLBACK_URL");
    if any_https && !tls {
        fail("an https:// URL needs TLS: build with `--features tls` (and STEADYLLM_CA_DER_PATH or `--features builtin-roots`)");
    }
    let builtin = env::var_os("CARGO_FEATURE_BUILTIN_ROOTS").is_some();
    let ca = match env::var("STEADYLLM_CA_DER_PATH") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            match fs::read(&path) {
                Ok(der) if der.first() == Some(&0x30) => der,
                Ok(_) => fail(&format!(
                    "STEADYLLM_CA_DER_PATH={path} is not DER (PEM? convert it: \
                     openssl x509 -in ca.pem -outform der -out ca.der; several roots may be \
                     concatenated: cat a.der b.der > roots.der)"
                )),
                Err(e) => fail(&format!("STEADYLLM_CA_DER_PATH={path}: {e}")),
            }
        }
        Err(_) if any_https && !builtin => fail(
            "an https:// URL needs root certificates: set STEADYLLM_CA_DER_PATH=roots.der or \
             build with `--features builtin-roots`",
        ),
        Err(_) => Vec::new(),
    };
    fs::write(out_dir().join("ca.der"), ca).expect("write ca.der");
    if env::var_os("WIFI_SSID").is_none() {
        println!(
            "cargo:warning=WIFI_SSID is not set: this firmware builds, but only logs that it \
             needs one. Build with WIFI_SSID=... WIFI_PASSWORD=... STEADYLLM_BASE_URL=..."
        );
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}
