//! birpc's JavaScript client, built into the crate so that a server can hand it to its pages (say at
//! `/birpc.js`, from the handler given to `ServerBuilder::http`). See `clients/js/README.md`.

/// The client: a dependency-free ES module, for `<script type="module">` and `import`.
pub const CLIENT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/birpc.js"));

/// The client's TypeScript declarations (`birpc.d.ts`).
pub const DECLARATIONS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/birpc.d.ts"));
