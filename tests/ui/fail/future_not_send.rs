use std::rc::Rc;

#[birpc::rpc]
pub trait Counter {
    async fn count(&self) -> u64;
}

struct Local;

impl Counter for Local {
    async fn count(&self) -> u64 {
        let here = Rc::new(1);
        std::future::ready(()).await;
        *here
    }
}

fn main() {}
