#[birpc::rpc]
pub trait Tools {
    async fn ping(&self) -> u32;

    #[cfg(debug_assertions)]
    async fn shutdown(&self);
}

fn main() {}
