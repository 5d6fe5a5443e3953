// For the type checker only: the page imports "./birpc.js", which the server serves from clients/js/birpc.js.
export * from "../../../clients/js/birpc.js";
