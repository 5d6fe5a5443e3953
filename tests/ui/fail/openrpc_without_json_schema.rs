use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Hit {
    text: String,
}

#[derive(Serialize, Deserialize)]
enum SearchError {
    Unavailable,
}

#[birpc::rpc(openrpc)]
trait Search {
    async fn search(&self, query: Hit) -> Vec<Hit>;
    async fn count(&self) -> Result<u32, SearchError>;
}

fn main() {}
