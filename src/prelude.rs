//! The names most programs need: `use birpc::prelude::*;`.

pub use crate::{
    CallError, Client, Context, ErrorObject, NoParams, Params, Peer, PeerConfig, PeerHandle, Router, Server, rpc,
};
