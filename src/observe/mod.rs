//! Observing a host: the facts script lvsup runs there and the parser of
//! what it prints (pure; `remote` is only the transport that carries them).

pub mod parse;

pub use parse::*;
