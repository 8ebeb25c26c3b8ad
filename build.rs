//! Compiles the Zitadel protocol definitions in `proto/` into Rust (prost
//! messages, tonic services) with protox, a protobuf compiler in Rust: a
//! fresh machine needs no `protoc`. The descriptor set is kept too, for the
//! protobuf JSON mapping of the Connect protocol.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["zitadel/management.proto", "zitadel/admin.proto"];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("zitadel_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().build_client(false).compile_fds(descriptors)?;
    Ok(())
}
