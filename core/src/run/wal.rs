//! Which member and cluster a data dir's etcd data belongs to, read from etcd's write-ahead log.
//!
//! Every WAL file (`member/wal/<seq>-<index>.wal`) opens with a CRC record and then a metadata record holding the
//! member ID and the cluster ID (etcd writes both again at the head of each file it cuts, so the first file still
//! there says it even after old ones were purged). The format is etcd's own, read byte by byte here because no
//! crate in the lock file reads it and only two varints of it are needed:
//!
//! - a frame: an 8-byte little-endian length word (the low 56 bits are the record's length; when the top bit is
//!   set, bits 56–58 are the number of padding bytes after it), then the record, then the padding;
//! - a record (`walpb.Record`, protobuf): field 1 `type` (varint; 1 is metadata, 4 is CRC), field 2 `crc`
//!   (varint), field 3 `data` (bytes);
//! - the metadata (`etcdserverpb.Metadata`, protobuf): field 1 `NodeID` (varint), field 2 `ClusterID` (varint).
//!
//! Checked against data dirs written by etcd 3.4.23 and 3.5.30 (see the tests and `e2e_adopt`).

use std::path::Path;

use crate::error::{Error, Result};
use crate::types::{MemberId, WalIdentity};

/// The record type of the metadata record (`metadataType` in etcd's `wal` package).
const METADATA: u64 = 1;
/// How many records at the head of a file are read looking for the metadata (it is the second).
const HEAD_RECORDS: usize = 4;

/// What the first WAL file of `<data_dir>/member/wal/` says: `None` when there is no WAL file, or its head holds no
/// metadata record that reads as one (a data dir etcd never finished creating). An I/O error other than "not
/// found" is an error.
pub(crate) fn identity(data_dir: &Path) -> Result<Option<WalIdentity>> {
    let dir = data_dir.join("member").join("wal");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    let Some(first) = files.first() else { return Ok(None) };
    // The head of the file is enough: the metadata is the second record, a few dozen bytes in.
    let mut head = Vec::with_capacity(4096);
    {
        use std::io::Read;
        let file = std::fs::File::open(first).map_err(|e| Error::io(first, e))?;
        file.take(4096).read_to_end(&mut head).map_err(|e| Error::io(first, e))?;
    }
    Ok(metadata_in(&head))
}

/// The identity in the metadata record among the first records of `head`, if it reads.
fn metadata_in(head: &[u8]) -> Option<WalIdentity> {
    let mut rest = head;
    for _ in 0..HEAD_RECORDS {
        let (record, after) = frame(rest)?;
        rest = after;
        let fields = Fields(record);
        if fields.varint(1)? != METADATA {
            continue;
        }
        let data = Fields(fields.bytes(3)?);
        return Some(WalIdentity { member_id: MemberId(data.varint(1)?), cluster_id: data.varint(2)? });
    }
    None
}

/// The record in the frame at the start of `buf`, and what follows the frame.
fn frame(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let word = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?);
    let len = usize::try_from(word & !(0xff << 56)).ok()?;
    let pad = if word >> 63 == 1 { ((word >> 56) & 0x7) as usize } else { 0 };
    let record = buf.get(8..8 + len)?;
    let rest = buf.get(8 + len + pad..)?;
    Some((record, rest))
}

/// A protobuf message's top-level fields, for the two wire types used here (0, varint; 2, length-delimited).
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&self, number: u64) -> Option<u64> {
        match self.find(number)? {
            Value::Varint(v) => Some(v),
            Value::Bytes(_) => None,
        }
    }

    fn bytes(&self, number: u64) -> Option<&'a [u8]> {
        match self.find(number)? {
            Value::Bytes(b) => Some(b),
            Value::Varint(_) => None,
        }
    }

    fn find(&self, number: u64) -> Option<Value<'a>> {
        let mut rest = self.0;
        while !rest.is_empty() {
            let (key, after) = varint(rest)?;
            let (value, after) = match key & 0x7 {
                0 => {
                    let (v, after) = varint(after)?;
                    (Value::Varint(v), after)
                }
                2 => {
                    let (len, after) = varint(after)?;
                    let len = usize::try_from(len).ok()?;
                    (Value::Bytes(after.get(..len)?), after.get(len..)?)
                }
                _ => return None,
            };
            if key >> 3 == number {
                return Some(value);
            }
            rest = after;
        }
        None
    }
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// A protobuf varint at the start of `buf`, and what follows it.
fn varint(buf: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &buf[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 0x38 bytes of `member/wal/0000000000000000-0000000000000000.wal` of a one-member cluster made by
    /// etcd 3.4.23 (`--initial-cluster a=http://127.0.64.1:2380 --initial-cluster-token etcd-spot-sig-test`), whose
    /// `etcdctl member list -w json` said member 16249610429638305720, cluster 8037264759601243353.
    const HEAD_3_4: &str = "0400000000000084 08041000 00000000 \
                            1f00000000000081 0801 10c1bcf2f303 1a15 08b8cfcba8f7d28dc1e101 10d9c9b08ef3b686c56f 00";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn reads_the_member_and_cluster_of_a_real_wal_head() {
        let id = metadata_in(&hex(HEAD_3_4)).expect("metadata");
        assert_eq!(
            id,
            WalIdentity { member_id: MemberId(16_249_610_429_638_305_720), cluster_id: 8_037_264_759_601_243_353 }
        );
    }

    #[test]
    fn a_cut_or_garbled_head_reads_as_nothing() {
        let head = hex(HEAD_3_4);
        for cut in [0, 7, 12, 20, 40] {
            assert_eq!(metadata_in(&head[..cut]), None, "cut at {cut}");
        }
        assert_eq!(metadata_in(&[0xff; 64]), None);
        assert_eq!(metadata_in(&[0; 64]), None);
    }

    #[test]
    fn a_data_dir_without_wal_files_has_no_identity() {
        let dir = std::env::temp_dir().join(format!("etcd-spot-wal-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        assert_eq!(identity(&dir).unwrap(), None);
        std::fs::write(dir.join("member/wal/0000000000000000-0000000000000000.wal"), hex(HEAD_3_4)).unwrap();
        std::fs::write(dir.join("member/wal/0.tmp"), b"x").unwrap();
        assert_eq!(identity(&dir).unwrap().map(|w| w.cluster_id), Some(8_037_264_759_601_243_353));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
