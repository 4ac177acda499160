//! The bytes of a received message, whichever flavour of ring it came from.

use super::mpmc::Message;

/// The bytes of a received message: in claimed cells, or contiguous (a streamed message
/// gathered in a private buffer, or a record of a single-producer ring read in place).
pub(crate) enum Bytes<'a> {
    Cells(&'a Message<'a>),
    Slice(&'a [u8]),
}

impl Bytes<'_> {
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        match self {
            Bytes::Cells(m) => m.len(),
            Bytes::Slice(b) => b.len(),
        }
    }

    /// The bytes as one slice when they are contiguous (one cell, or owned).
    pub(crate) fn as_slice(&self) -> Option<&[u8]> {
        match self {
            Bytes::Cells(m) if m.cells() == 1 => Some(m.first_cell()),
            Bytes::Cells(_) => None,
            Bytes::Slice(b) => Some(b),
        }
    }

    /// The bytes in their pieces, in order, where they lie (one piece unless they span
    /// several cells).
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (m, contiguous) = match self {
            Bytes::Cells(m) => (Some(*m), None),
            Bytes::Slice(b) => (None, Some(*b)),
        };
        let cells = m.map_or(0, |m| m.cells());
        contiguous
            .into_iter()
            .chain((0..cells).filter_map(move |j| m.map(|m| m.cell_data(j))))
    }

    /// Copies the bytes into the start of `out` (which must be at least `len` long).
    pub(crate) fn copy_to(&self, out: &mut [u8]) {
        match self {
            Bytes::Cells(m) => m.copy_range(0, &mut out[..m.len()]),
            Bytes::Slice(b) => out[..b.len()].copy_from_slice(b),
        }
    }

    /// Appends the bytes to `out`.
    pub(crate) fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Bytes::Cells(m) if m.cells() == 1 => out.extend_from_slice(m.first_cell()),
            Bytes::Cells(m) => m.append_from(0, out),
            Bytes::Slice(b) => out.extend_from_slice(b),
        }
    }

    /// The bytes in a new vector.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.append_to(&mut v);
        v
    }
}
