//! Property tests ("fuzz") of the volume repository's decoders of what a location holds: pack
//! headers and the blobs they list, blobs decompressed into a buffer their index entry sizes,
//! index files and the index built from them, snapshots, trees, prune plans and the repository
//! config whose chunk bounds size the chunker's buffers. For arbitrary bytes, and for hostile
//! forms of valid objects (truncated, bit-flipped, sealed with the right key but lying), each
//! returns a value or an error: it never panics, and never sizes a buffer past
//! `proto/FORMAT.md`'s limits.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's 256 by default); README's "Tests" gives the
//! longer run by hand. `cairn-proto`'s `format::fuzz` covers the decoders it owns.

use std::sync::{Arc, LazyLock};

use cairn_proto::format::VolumeKeys;
use cairn_proto::format::limits::VOLUME_BLOB_PLAIN_MAX;
use cairn_proto::pb;
use cairn_proto::seal::Key;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload, path::Path};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;

use super::blob::{self, BlobId, Compressor};
use super::index::Index;
use super::pack::{self, PackBuilder};
use super::repo::{CHUNK_MAX_EVER, check_config};
use super::{Error, Repository, check};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

fn master() -> Key {
    Key::from_raw(&[9; 32], "fuzz").expect("key")
}

const ID_KEY: [u8; 32] = [4; 32];

/// What may be done to a valid object: cut it, flip a byte's bits, insert bytes.
#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
}

fn damages() -> impl Strategy<Value = Vec<Damage>> {
    vec(
        prop_oneof![
            any::<usize>().prop_map(Damage::Truncate),
            (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Damage::Flip(at, mask)),
            (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
        ],
        0..3,
    )
}

fn damaged(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        match d {
            Damage::Truncate(i) => bytes.truncate(i % (bytes.len() + 1)),
            Damage::Flip(i, mask) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] ^= mask;
                }
            }
            Damage::Insert(i, more) => {
                let i = i % (bytes.len() + 1);
                bytes.splice(i..i, more.iter().copied());
            }
        }
    }
    bytes
}

/// Valid bytes of a message, damaged, or any bytes.
fn encoded_or_any<M: Message + 'static>(message: impl Strategy<Value = M>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (message, damages()).prop_map(|(m, d)| damaged(m.encode_to_vec(), &d)),
        vec(any::<u8>(), 0..512),
    ]
}

/// Offsets, lengths and sizes: the edges as often as small values.
fn size32() -> impl Strategy<Value = u32> {
    prop_oneof![
        0..600_u32,
        Just(u32::MAX),
        Just(1 << 31),
        Just((1 << 31) - 1),
        any::<u32>()
    ]
}

fn size64() -> impl Strategy<Value = u64> {
    prop_oneof![0..600_u64, Just(u64::MAX), Just(1 << 32), any::<u64>()]
}

/// Blob entries as a header or an index file may list them, lying about everything.
fn blob_entry() -> impl Strategy<Value = pb::BlobEntry> {
    (
        prop_oneof![vec(any::<u8>(), 32..=32), vec(any::<u8>(), 0..40)],
        prop_oneof![0..2_i32, any::<i32>()],
        size64(),
        size32(),
        size32(),
        any::<bool>(),
    )
        .prop_map(
            |(id, kind, offset, length, raw_length, compressed)| pb::BlobEntry {
                id,
                kind,
                offset,
                length,
                raw_length,
                compressed,
            },
        )
}

/// Any text.
fn text(max: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Object names: hexadecimal as Cairn makes them (64 digits), or any text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|b| b.iter().map(|b| format!("{b:02x}")).collect()),
        text(16),
    ]
}

/// Plaintexts that compress (repeated runs) or do not (any bytes).
fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (any::<u8>(), 0..4096_usize).prop_map(|(b, n)| vec![b; n]),
        vec(any::<u8>(), 0..512),
    ]
}

// ---- Packs and their headers ----

proptest! {
    /// Any bytes named by their hash (so that the header is reached): refused, never a panic.
    #[test]
    fn fuzz_pack_header_of_any_bytes(mut bytes in vec(any::<u8>(), 0..256), tail in size32()) {
        bytes.extend_from_slice(&tail.to_le_bytes());
        let id = blake3::hash(&bytes).to_hex().to_string();
        prop_assert!(pack::read_header(&master(), &id, &bytes).is_err());
        prop_assert!(pack::read_header(&master(), "ab", &bytes).is_err(), "a pack not named by its hash");
    }

    /// A real pack, damaged and named again by its hash: it checks only if its header and every
    /// blob it lists are intact (bytes inserted between the last blob and the header change
    /// neither: such a pack checks, and holds the same blobs).
    #[test]
    fn fuzz_pack_damaged(blobs in vec(plaintext(), 1..4), d in damages()) {
        let mut builder = PackBuilder::new().expect("pack");
        for plain in &blobs {
            builder.add(&master(), BlobId::of(&ID_KEY, plain), pb::BlobKind::Data, plain).expect("add");
        }
        let pack = builder.finish(&master()).expect("finish");
        let hostile = damaged(pack.bytes.clone(), &d);
        let id = blake3::hash(&hostile).to_hex().to_string();
        let checked = check::check_blobs(&master(), &ID_KEY, &id, &hostile);
        if hostile == pack.bytes {
            prop_assert_eq!(checked.expect("an intact pack") as usize, blobs.len());
        } else if checked.is_ok() {
            let listed = pack::read_header(&master(), &id, &hostile).expect("it checked");
            prop_assert_eq!(&listed, &pack.blobs, "a damaged header checked");
            for e in &listed {
                let range = usize::try_from(e.offset).expect("small")..usize::try_from(e.offset).expect("small") + e.length as usize;
                prop_assert_eq!(&hostile[range.clone()], &pack.bytes[range], "a damaged blob checked");
            }
        }
    }

    /// A header sealed with the right key but lying about offsets, lengths and sizes: every blob
    /// is refused (or opens, if the lie happens to be true), never a panic or a huge buffer.
    #[test]
    fn fuzz_pack_header_lying_about_its_blobs(
        mut entries in vec(blob_entry(), 0..4),
        plain in plaintext(),
        truthful in any::<bool>(),
    ) {
        let mut bytes = Vec::new();
        let compressed = blob::seal_into(&master(), &mut Compressor::new().expect("zstd"), &plain, &mut bytes)
            .expect("sealed");
        if truthful && let Some(first) = entries.first_mut() {
            // One entry right but for its raw length: it opens iff that length holds the blob.
            first.id = BlobId::of(&ID_KEY, &plain).0.to_vec();
            first.offset = 0;
            first.length = u32::try_from(bytes.len()).expect("small");
            first.compressed = compressed;
        }
        let header = pb::PackHeader { blobs: entries.clone() }.encode_to_vec();
        let start = bytes.len();
        master().seal_into("cairn pack header", &header, &mut bytes).expect("sealed");
        let header_len = u32::try_from(bytes.len() - start).expect("small");
        bytes.extend_from_slice(&header_len.to_le_bytes());
        let id = blake3::hash(&bytes).to_hex().to_string();
        let listed = pack::read_header(&master(), &id, &bytes).expect("the header opens");
        prop_assert_eq!(&listed, &entries);
        let _ = check::check_blobs(&master(), &ID_KEY, &id, &bytes);
    }
}

/// Found by `fuzz_pack_damaged`: a byte inserted between a pack's last blob and its header
/// leaves every blob and the header intact, and the pack (under its new name) checks.
#[test]
fn fuzz_pack_with_a_byte_before_its_header_holds_the_same_blobs() {
    let mut builder = PackBuilder::new().expect("pack");
    builder
        .add(
            &master(),
            BlobId::of(&ID_KEY, b"data"),
            pb::BlobKind::Data,
            b"data",
        )
        .expect("add");
    let pack = builder.finish(&master()).expect("finish");
    let header_at = usize::try_from(pack.blobs[0].length).expect("small");
    let mut moved = pack.bytes.clone();
    moved.insert(header_at, 0);
    let id = blake3::hash(&moved).to_hex().to_string();
    assert_eq!(
        check::check_blobs(&master(), &ID_KEY, &id, &moved).expect("checks"),
        1
    );
    assert_eq!(
        pack::read_header(&master(), &id, &moved).expect("header"),
        pack.blobs
    );
}

/// Regression (fuzz): an entry whose offset is near `u64::MAX` overflowed `offset + length` in
/// `check --read-data` (a panic in debug builds).
#[test]
fn fuzz_pack_entry_at_the_end_of_the_address_space_is_refused() {
    let entry = pb::BlobEntry {
        id: vec![1; 32],
        kind: 0,
        offset: u64::MAX,
        length: 16,
        raw_length: 0,
        compressed: false,
    };
    let mut bytes = Vec::new();
    let header = pb::PackHeader { blobs: vec![entry] }.encode_to_vec();
    master()
        .seal_into("cairn pack header", &header, &mut bytes)
        .expect("sealed");
    let len = u32::try_from(bytes.len()).expect("small");
    bytes.extend_from_slice(&len.to_le_bytes());
    let id = blake3::hash(&bytes).to_hex().to_string();
    let e = check::check_blobs(&master(), &ID_KEY, &id, &bytes).expect_err("refused");
    assert!(e.to_string().contains("past the pack's end"), "{e}");
}

// ---- Blobs ----

proptest! {
    #[test]
    fn fuzz_blob_of_any_bytes(stored in vec(any::<u8>(), 0..256), compressed in any::<bool>(), raw in size32()) {
        let id = BlobId([0; 32]);
        prop_assert!(blob::open(&master(), &ID_KEY, &id, &stored, compressed, raw as usize).is_err());
    }

    /// A real blob opened with any raw length: a compressed one is refused past the limit
    /// before a buffer is made, and otherwise opens iff the length holds it; a damaged one never
    /// opens.
    #[test]
    fn fuzz_blob_raw_length_and_damage(plain in plaintext(), raw in size32(), exact in any::<bool>(), d in damages()) {
        let mut stored = Vec::new();
        let compressed = blob::seal_into(&master(), &mut Compressor::new().expect("zstd"), &plain, &mut stored)
            .expect("sealed");
        let raw = if exact { u32::try_from(plain.len()).expect("small") } else { raw };
        let id = BlobId::of(&ID_KEY, &plain);
        let opened = blob::open(&master(), &ID_KEY, &id, &stored, compressed, raw as usize);
        if compressed && u64::from(raw) > VOLUME_BLOB_PLAIN_MAX {
            let e = opened.expect_err("over the limit");
            prop_assert!(e.to_string().contains("more than the 67108864 bytes a blob may hold"), "{}", e);
        } else if !compressed || raw as usize >= plain.len() {
            prop_assert_eq!(opened.expect("opens"), plain.clone());
        } else {
            prop_assert!(opened.is_err());
        }
        let hostile = damaged(stored.clone(), &d);
        if hostile != stored {
            prop_assert!(blob::open(&master(), &ID_KEY, &id, &hostile, compressed, plain.len()).is_err());
        }
    }
}

/// The raw length is checked before anything else: the blob below does not even open, and the
/// refusal names its size.
#[test]
fn fuzz_blob_announcing_two_gib_is_refused_before_a_buffer_is_made() {
    let e = blob::open(
        &master(),
        &ID_KEY,
        &BlobId([0; 32]),
        &[0; 64],
        true,
        (1 << 31) - 1,
    )
    .expect_err("refused");
    assert!(
        e.to_string()
            .contains("it says it decompresses to 2147483647 bytes, more than the 67108864 bytes"),
        "{e}"
    );
}

// ---- Index files and the index ----

fn index_file() -> impl Strategy<Value = pb::IndexFile> {
    vec(
        (name(), vec(blob_entry(), 0..4)).prop_map(|(pack, blobs)| pb::IndexPack { pack, blobs }),
        0..4,
    )
    .prop_map(|packs| pb::IndexFile { packs })
}

proptest! {
    /// Index files of any bytes, or lying about their packs: added to a full and a compact index,
    /// then every blob they name looked up; every place found lies within 4 GiB and its pack's key
    /// builds.
    #[test]
    fn fuzz_index_file_decodes_and_indexes(bytes in encoded_or_any(index_file())) {
        let Ok(file) = pb::IndexFile::decode(bytes.as_slice()) else { return Ok(()) };
        for mut index in [Index::full(), Index::compact()] {
            for p in &file.packs {
                if index.add_pack(&p.pack, &p.blobs).is_err() {
                    break;
                }
            }
            let index = index.finish();
            for b in file.packs.iter().flat_map(|p| &p.blobs) {
                let Ok(id) = BlobId::from_slice(&b.id) else { continue };
                let _ = index.contains(&id);
                if let Ok(entry) = index.get(&id) {
                    prop_assert!(entry.offset.checked_add(u64::from(entry.length)).is_some());
                    prop_assert!(u64::from(entry.raw_length) < 1 << 31);
                    let _ = VolumeKeys::pack(&entry.pack);
                }
            }
            for (pack, _) in index.packs() {
                let _ = VolumeKeys::pack(pack);
            }
        }
    }
}

// ---- Snapshots, trees, prune plans ----

fn node() -> impl Strategy<Value = pb::Node> {
    (
        (text(8), prop_oneof![0..4_i32, any::<i32>()]),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<i64>()),
        (size64(), size64(), size64(), size64()),
        (
            vec(vec(any::<u8>(), 0..34), 0..3),
            vec(any::<u8>(), 0..34),
            text(8),
        ),
    )
        .prop_map(
            |(
                (name, kind),
                (mode, uid, gid, mtime_ns),
                (size, inode, device, links),
                (content, subtree, target),
            )| pb::Node {
                name,
                kind,
                mode,
                uid,
                gid,
                mtime_ns,
                size,
                inode,
                device,
                links,
                content,
                subtree,
                target,
            },
        )
}

fn snapshot() -> impl Strategy<Value = pb::Snapshot> {
    (
        (any::<i64>(), vec(any::<u8>(), 0..34)),
        (text(8), text(8), name(), text(4)),
        (size64(), size64(), size64(), size64(), size64()),
        prop::option::of(node()),
    )
        .prop_map(
            |(
                (time_unix_ms, tree),
                (host, path, parent, tag),
                (files, dirs, bytes, bytes_read, bytes_added),
                root,
            )| {
                pb::Snapshot {
                    time_unix_ms,
                    tree,
                    host,
                    path,
                    parent,
                    files,
                    dirs,
                    bytes,
                    bytes_read,
                    bytes_added,
                    tag,
                    root,
                }
            },
        )
}

proptest! {
    #[test]
    fn fuzz_snapshot_tree_and_prune_plan_decode_or_refuse(
        snapshot in encoded_or_any(snapshot()),
        tree in encoded_or_any(vec(node(), 0..4).prop_map(|nodes| pb::Tree { nodes })),
        plan in vec(any::<u8>(), 0..256),
        id in name(),
    ) {
        if let Ok(s) = pb::Snapshot::decode(snapshot.as_slice()) {
            let _ = BlobId::from_slice(&s.tree);
        }
        if let Ok(t) = pb::Tree::decode(tree.as_slice()) {
            for n in &t.nodes {
                for c in &n.content {
                    let _ = BlobId::from_slice(c);
                }
                let _ = BlobId::from_slice(&n.subtree);
            }
        }
        let _ = pb::PrunePlan::decode(plan.as_slice());
        // Snapshot ids are object names: `check` shows any of them.
        let shown = check::short(&id);
        prop_assert!(id.starts_with(shown) && shown.chars().count() == id.chars().count().min(12));
    }
}

/// Regression (fuzz): a snapshot copied to a short or non-ASCII name made `check` panic
/// (`&snapshot[..12]`).
#[test]
fn fuzz_snapshot_ids_of_any_name_show() {
    assert_eq!(check::short("ab"), "ab");
    assert_eq!(check::short("ééééééééééééé"), "éééééééééééé");
    assert_eq!(check::short("0123456789abcdef"), "0123456789ab");
}

// ---- The repository config ----

fn repo_config() -> impl Strategy<Value = pb::RepoConfig> {
    let bound = prop_oneof![
        Just(0_u32),
        Just(64),
        Just(256 << 10),
        Just(512 << 10),
        Just(1 << 20),
        Just(4 << 20),
        Just(8 << 20),
        Just(16 << 20),
        Just(1 << 31),
        Just(u32::MAX),
        any::<u32>(),
    ];
    (0..3_u32, bound.clone(), bound.clone(), bound).prop_map(|(version, chunk_min, chunk_avg, chunk_max)| {
        pb::RepoConfig {
            version,
            id: vec![5; 32],
            chunk_min,
            chunk_avg,
            chunk_max,
        }
    })
}

proptest! {
    /// Whatever `volumes/config` says, a repository opens only with bounds FastCDC accepts and a
    /// maximum of at most 8 MiB (so at most 16 MiB of chunker buffer per reader); chunking any
    /// data with them cuts chunks within them.
    #[test]
    fn fuzz_repository_config_bounds(config in repo_config(), data in vec(any::<u8>(), 0..4096)) {
        let checked = check_config(&config);
        if checked.is_ok() {
            prop_assert!(config.chunk_max <= CHUNK_MAX_EVER);
            for chunk in fastcdc::v2020::FastCDC::new(&data, config.chunk_min, config.chunk_avg, config.chunk_max) {
                prop_assert!(chunk.length <= config.chunk_max as usize);
            }
        }
        let kek = Key::from_raw(&[3; 32], "kek").expect("kek");
        let opened = RUNTIME.block_on(async {
            let store = Arc::new(InMemory::new());
            store
                .put(&Path::from(VolumeKeys::config()), PutPayload::from(config.encode_to_vec()))
                .await
                .expect("put");
            // The key file a repository of that version has: the master key alone (1), or
            // with the configuration it authenticates (2).
            let sealed = if config.version <= 1 {
                vec![8; 32]
            } else {
                pb::RepoKey { master: vec![8; 32], config: Some(config.clone()) }.encode_to_vec()
            };
            cairn_proto::format::repository_key::wrap(store.as_ref(), "", &config, &kek, &sealed)
                .await
                .expect("wrap");
            Repository::open(store, "fuzz", &kek, "kek").await
        });
        match opened {
            Ok(repo) => {
                prop_assert!(checked.is_ok());
                let (min, avg, max) = repo.chunking();
                prop_assert!(min <= avg && avg <= max && max <= CHUNK_MAX_EVER);
            }
            Err(e) => prop_assert!(checked.is_err() && matches!(e, Error::Corrupt { .. }), "{}", e),
        }
    }
}

/// Issue 15's case: a config rewritten with a 2 GiB chunk maximum is refused when the repository
/// opens, before the chunker sizes a buffer from it; the bounds Cairn has written open.
#[test]
fn fuzz_repository_config_with_a_two_gib_chunk_is_refused() {
    let config = |chunk_min, chunk_avg, chunk_max| pb::RepoConfig {
        version: 1,
        id: vec![5; 32],
        chunk_min,
        chunk_avg,
        chunk_max,
    };
    let e = check_config(&config(256 << 10, 512 << 10, 1 << 31)).expect_err("refused");
    assert!(
        e.to_string().contains("chunk bounds 262144, 524288, 2147483648"),
        "{e}"
    );
    check_config(&config(256 << 10, 512 << 10, 4 << 20)).expect("today's");
    check_config(&config(512 << 10, 1 << 20, 8 << 20)).expect("before 2026-11");
}
