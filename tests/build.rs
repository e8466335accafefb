//! Generates a client from the tutorial's original `storage.proto`
//! (`seed/storage.proto`, kept unmodified), to prove wire compatibility.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=seed/storage.proto");
    let fds = protox::compile(["storage.proto"], ["seed"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
