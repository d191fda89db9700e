//! Compiles the box's wire schema (`proto/wire.proto`) with prost-build,
//! which runs `protoc` (Debian's `protobuf-compiler`; `PROTOC` names
//! another).

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/wire.proto");
    prost_build::Config::new().compile_protos(&["proto/wire.proto"], &["proto"])
}
