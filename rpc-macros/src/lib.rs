//! The `#[rpc]` attribute of birpc. Use it through `birpc::rpc`.

use proc_macro::TokenStream;

/// Turns an annotated trait into a service trait and a typed client stub (coming with the macro issue;
/// for now it leaves the trait unchanged).
#[proc_macro_attribute]
pub fn rpc(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
