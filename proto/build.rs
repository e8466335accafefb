//! Compiles `storage.proto` with protox (a pure-Rust protobuf compiler, so no
//! `protoc` install is needed) and generates the prost/tonic code from it.
use prost::Message;
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=storage.proto");
    let fds = protox::compile(["storage.proto"], ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("storage_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(env::var_os("CARGO_FEATURE_SERVER").is_some())
        .build_transport(env::var_os("CARGO_FEATURE_TRANSPORT").is_some())
        // `bytes` fields as `bytes::Bytes`: chunks pass through without copies.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
