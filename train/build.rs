//! Puts libtorch's directory on the rpath of this crate's tests, so they run without
//! LD_LIBRARY_PATH (torch-sys tells direct dependents where libtorch is).
fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
