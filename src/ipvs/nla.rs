//! Small helpers shared by the attribute codecs: nested attribute lists, fixed-size
//! integers with a checked length, NUL-terminated strings and the 16-byte address field.

use netlink_packet_core::{
    DecodeError, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator, Parseable,
};

/// Parse every attribute in `payload` (the value of a nest, or a message body).
///
/// The kernel builds IPVS nests with `nla_nest_start_noflag()`, i.e. without
/// `NLA_F_NESTED`, so callers decide by attribute kind which ones are nests.
pub(crate) fn parse_nlas<T>(payload: &[u8], what: &str) -> Result<Vec<T>, DecodeError>
where
    T: for<'a> Parseable<NlaBuffer<&'a [u8]>>,
{
    let mut out = Vec::new();
    for nla in NlasIterator::new(payload) {
        let nla = nla.with_context(|| format!("invalid attribute in {what}"))?;
        out.push(T::parse(&nla).with_context(|| format!("invalid attribute in {what}"))?);
    }
    Ok(out)
}

/// Length of the value of a nest holding `nlas`.
pub(crate) fn nested_len<T: Nla>(nlas: &[T]) -> usize {
    nlas.as_ref().buffer_len()
}

/// Emit `nlas` as the value of a nest.
pub(crate) fn emit_nested<T: Nla>(nlas: &[T], buffer: &mut [u8]) {
    nlas.as_ref().emit(buffer)
}

fn fixed<const N: usize>(payload: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    payload.try_into().map_err(|_| {
        DecodeError::from(format!("{what}: expected {N} bytes, got {}", payload.len()))
    })
}

pub(crate) fn u8_ne(payload: &[u8], what: &str) -> Result<u8, DecodeError> {
    Ok(fixed::<1>(payload, what)?[0])
}
pub(crate) fn u16_ne(payload: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(fixed(payload, what)?))
}
pub(crate) fn u16_be(payload: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed(payload, what)?))
}
pub(crate) fn u32_ne(payload: &[u8], what: &str) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(fixed(payload, what)?))
}
pub(crate) fn u64_ne(payload: &[u8], what: &str) -> Result<u64, DecodeError> {
    Ok(u64::from_ne_bytes(fixed(payload, what)?))
}
/// A counter sent either as u32 or u64 (`nla_put_u32` / `nla_put_u64_64bit`).
pub(crate) fn counter(payload: &[u8], what: &str) -> Result<u64, DecodeError> {
    match payload.len() {
        4 => u32_ne(payload, what).map(u64::from),
        _ => u64_ne(payload, what),
    }
}

/// A NUL-terminated string (`nla_put_string`); anything after the first NUL is ignored.
pub(crate) fn cstring(payload: &[u8], what: &str) -> Result<String, DecodeError> {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    String::from_utf8(payload[..end].to_vec())
        .map_err(|_| DecodeError::from(format!("{what}: not valid UTF-8")))
}
/// Length of `s` as a NUL-terminated string.
pub(crate) fn cstring_len(s: &str) -> usize {
    s.len() + 1
}
pub(crate) fn emit_cstring(s: &str, buffer: &mut [u8]) {
    let n = s.len();
    buffer[..n].copy_from_slice(s.as_bytes());
    buffer[n] = 0;
}

/// `union nf_inet_addr`: 16 bytes, an IPv4 address in the first 4. The kernel copies
/// with `nla_memcpy`, so shorter values are accepted and zero-padded.
pub(crate) fn inet_addr(payload: &[u8], what: &str) -> Result<[u8; 16], DecodeError> {
    if payload.len() > 16 {
        return Err(DecodeError::from(format!(
            "{what}: address of {} bytes (at most 16)",
            payload.len()
        )));
    }
    let mut out = [0u8; 16];
    out[..payload.len()].copy_from_slice(payload);
    Ok(out)
}
