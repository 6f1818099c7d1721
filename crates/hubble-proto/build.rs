//! Generates the Rust types, the tonic client and server, and protojson-style serde impls
//! from the `.proto` files under `proto/` (with `protoc`, as etcd-client's build does).

use std::path::PathBuf;

use anyhow::Context;

const PROTOS: [&str; 3] = [
    "proto/flow/flow.proto",
    "proto/relay/relay.proto",
    "proto/observer/observer.proto",
];

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").context("OUT_DIR is set by cargo")?);
    let descriptors = out_dir.join("hubble_descriptors.bin");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptors)
        // Well-known types with JSON as protojson writes it (RFC 3339 timestamps, bare
        // wrapper values), instead of prost's defaults.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        .compile_protos(&PROTOS, &["proto"])
        .context("compiling the Hubble protos (is protoc installed? apt protobuf-compiler)")?;
    let set = std::fs::read(&descriptors)
        .with_context(|| format!("reading {}", descriptors.display()))?;
    pbjson_build::Builder::new()
        .register_descriptors(&set)
        .context("registering the descriptors with pbjson")?
        // `hubble observe -o json` prints protojson with the proto field names.
        .preserve_proto_field_names()
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        // Newer Cilium versions add fields: read their JSON all the same.
        .ignore_unknown_fields()
        .build(&[".flow", ".relay", ".observer"])
        .context("generating the serde impls")?;
    Ok(())
}
