//! A method may have a body in the trait: it may use the context, take `mut` params, call other methods,
//! and return early; an implementation may keep it or replace it.

use birpc::{Context, ErrorObject};

#[birpc::rpc]
pub trait Counter {
    async fn base(&self) -> u32;

    /// Counts up from `base`, `steps` times, asking nobody.
    async fn count(&self, ctx: &Context, mut steps: u32) -> Result<u32, ErrorObject> {
        let _ = ctx.peer();
        let mut total = self.base().await;
        if steps == 0 {
            return Ok(total);
        }
        while steps > 0 {
            total += 1;
            steps -= 1;
        }
        Ok(total)
    }

    #[rpc(notification)]
    async fn reset(&self) {}

    /// A `mut` param on a method without a body (the binding is the implementation's business).
    async fn scale(&self, mut by: u32) -> u32;

    /// A raw identifier, `?`, and an attribute on a method with a body.
    #[allow(clippy::needless_question_mark)]
    async fn r#type(&self, text: String) -> Result<u32, ErrorObject> {
        Ok(text.parse::<u32>().map_err(|e| ErrorObject::invalid_params(e.to_string()))?)
    }
}

struct Ten;

impl Counter for Ten {
    async fn base(&self) -> u32 {
        10
    }
    async fn scale(&self, mut by: u32) -> u32 {
        by *= 10;
        by
    }
}

struct Replaced;

impl Counter for Replaced {
    async fn base(&self) -> u32 {
        0
    }
    async fn count(&self, _ctx: &Context, steps: u32) -> Result<u32, ErrorObject> {
        Ok(steps)
    }
    async fn scale(&self, by: u32) -> u32 {
        by
    }
}

fn main() {
    assert!(Ten.into_router().contains("count"));
    assert!(Replaced.into_router().contains("reset"));
    assert!(Ten.into_router().contains("type"));
}
