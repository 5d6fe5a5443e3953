#[birpc::rpc]
struct Service;

fn main() {}
