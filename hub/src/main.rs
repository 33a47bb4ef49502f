//! `cairn-hub`: the central server that agents dial into. The vertical-slice issue fills it in.

fn main() {
    eprintln!("cairn-hub: not yet implemented");
    std::process::exit(2);
}
