//! Generates the gRPC and message code from `proto/cairn/v1/*.proto` (needs `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos =
        ["types", "fleet", "agent", "api", "format", "volume"].map(|p| format!("cairn/v1/{p}.proto"));
    let includes = [".".to_owned()];
    tonic_prost_build::configure().compile_protos(&protos, &includes)?;
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
