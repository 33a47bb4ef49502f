//! Property tests ("fuzz") of every decoder of what a location holds that lives in this crate:
//! manifests, item-index parts, restore-items parts, object parts, the sealed-object header,
//! keyring versions, the volume repository's config and key files, and volume keys built from
//! names read in the bucket. For arbitrary bytes, and for hostile forms of valid objects
//! (truncated, bit-flipped, given huge lengths and counts, zstd bombs), each decoder returns a
//! value or an error: it never panics, and never holds more than `proto/FORMAT.md`'s limits.
//!
//! Cases per property: `PROPTEST_CASES` (proptest's 256 by default: a few seconds for all of
//! them); README's "Tests" gives the longer run by hand. The decoders of the volume repository's
//! packs, blobs, index files, snapshots and trees are fuzzed in `cairn-agent` (`volume::fuzz`),
//! keyrings as the hub opens them in `cairn-hub` (`keyring`).

use std::io::Write as _;
use std::sync::{Arc, LazyLock};

use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;

use super::sealed_store::{self, Stored};
use super::{
    INDEX_PART_ENTRIES, ObjectKind, ObjectSeal, PartReader, RESTORE_PART_ITEMS, SealedStore, VolumeDir,
    VolumeKeys, key_version_of,
};
use crate::convert::Wire;
use crate::model::{IndexEntry, ItemResult, KeyVersion, Manifest, ResourceKey, ResourceKeys};
use crate::pb;
use crate::seal::Key;

/// One runtime for the properties that read through an object store.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

// ---- Inputs ----

/// Text: empty, names the decoders accept (to get past the first check), or any characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        prop::sample::select(vec![
            "nightly",
            "prod-eu",
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "shop",
            "app=web",
            "/Namespace",
            "example.com/Widget",
            "core",
            "index/000000.pb",
        ])
        .prop_map(str::to_owned),
        vec(any::<char>(), 0..12).prop_map(String::from_iter),
    ]
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

/// Times and counts: the edges as often as the middle.
fn int64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0_i64),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(253_402_300_800_000_i64), // the first millisecond of the year 10000
        Just(1_790_000_000_000_i64),
        any::<i64>(),
    ]
}

/// Enum values: the valid ones, and some that are not.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![0..8_i32, any::<i32>()]
}

/// Any characters, at least one.
fn some_text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 1..12).prop_map(String::from_iter)
}

/// Any characters, or none.
fn free_text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

/// Names the domain accepts.
fn valid_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["nightly", "prod-eu", "apps", "v1", "shop", "core", "a.b-c"])
        .prop_map(str::to_owned)
}

fn opt_name() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), valid_name()]
}

/// An item reference as the domain accepts it (kind and name set), or any.
fn item_ref() -> impl Strategy<Value = pb::ItemRef> {
    prop_oneof![
        3 => (free_text(), free_text(), some_text(), free_text(), free_text(), some_text()),
        1 => (text(), text(), text(), text(), text(), text()),
    ]
    .prop_map(|(group, version, kind, resource, namespace, name)| pb::ItemRef {
        group,
        version,
        kind,
        resource,
        namespace,
        name,
    })
}

fn item_result() -> impl Strategy<Value = pb::ItemResult> {
    (
        prop::option::of(item_ref()),
        prop_oneof![3 => 1..=8_i32, 1 => enum_value()],
        text(),
    )
        .prop_map(|(item, outcome, message)| pb::ItemResult {
            item,
            outcome,
            message,
        })
}

fn resource_summary() -> impl Strategy<Value = pb::ResourceSummary> {
    (
        (text(), text(), text(), text()),
        any::<bool>(),
        any::<u64>(),
        texts(),
        texts(),
    )
        .prop_map(
            |((group, version, kind, resource), namespaced, count, parts, depends_on)| pb::ResourceSummary {
                group,
                version,
                kind,
                resource,
                namespaced,
                count,
                parts,
                depends_on,
            },
        )
}

fn volume_result() -> impl Strategy<Value = pb::VolumeResult> {
    (
        (text(), text(), text(), text(), text(), text()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (text(), int64(), int64()),
    )
        .prop_map(
            |(
                (namespace, claim, volume, node, pod, snapshot),
                (files, bytes, bytes_read, bytes_added),
                (error, started_unix_ms, finished_unix_ms),
            )| {
                pb::VolumeResult {
                    namespace,
                    claim,
                    volume,
                    node,
                    pod,
                    snapshot,
                    files,
                    bytes,
                    bytes_read,
                    bytes_added,
                    error,
                    started_unix_ms,
                    finished_unix_ms,
                }
            },
        )
}

fn backup_spec() -> BoxedStrategy<pb::BackupSpec> {
    (
        (text(), text(), text(), text()),
        (texts(), texts(), texts(), texts()),
        (enum_value(), any::<u64>(), int64()),
        (text(), text(), text(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (name, cluster, location, label_selector),
                (include_namespaces, exclude_namespaces, include_resources, exclude_resources),
                (cluster_resources, ttl_seconds, created_unix_ms),
                (workspace, schedule, group, volumes, offline),
            )| pb::BackupSpec {
                name,
                cluster,
                location,
                include_namespaces,
                exclude_namespaces,
                include_resources,
                exclude_resources,
                label_selector,
                cluster_resources,
                ttl_seconds,
                created_unix_ms,
                workspace,
                schedule,
                group,
                volumes,
                offline,
            },
        )
        .boxed()
}

fn backup_status() -> BoxedStrategy<pb::BackupStatus> {
    status_of(
        enum_value().boxed(),
        vec(resource_summary(), 0..3).boxed(),
        vec(item_result(), 0..3).boxed(),
        text().boxed(),
    )
}

/// A backup status whose phase, resources, problems and texts come from the strategies given.
fn status_of(
    phase: BoxedStrategy<i32>,
    resources: BoxedStrategy<Vec<pb::ResourceSummary>>,
    problems: BoxedStrategy<Vec<pb::ItemResult>>,
    text: BoxedStrategy<String>,
) -> BoxedStrategy<pb::BackupStatus> {
    (
        (phase, int64(), int64(), any::<u64>(), any::<u64>()),
        (resources, problems, vec(volume_result(), 0..2)),
        (text.clone(), text.clone(), text),
        any::<bool>(),
    )
        .prop_map(
            |(
                (phase, started_unix_ms, finished_unix_ms, items, bytes),
                (resources, problems, volumes),
                (error, agent_version, kubernetes_version),
                spooled,
            )| pb::BackupStatus {
                phase,
                started_unix_ms,
                finished_unix_ms,
                items,
                bytes,
                resources,
                problems,
                error,
                agent_version,
                kubernetes_version,
                volumes,
                spooled,
            },
        )
        .boxed()
}

/// A manifest the domain accepts: names valid, phase and outcomes set, anything else anything
/// (times and counts at their edges, free text of any characters).
fn plausible_manifest() -> BoxedStrategy<pb::BackupManifest> {
    let spec = (
        (
            valid_name(),
            valid_name(),
            opt_name(),
            (opt_name(), opt_name(), opt_name()),
        ),
        (
            vec(free_text(), 0..3),
            vec(free_text(), 0..3),
            vec(free_text(), 0..3),
            vec(free_text(), 0..3),
        ),
        (
            prop::sample::select(vec!["", "app=web", "env in (a, b),!legacy"]),
            0..3_i32,
            any::<u64>(),
            int64(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (name, cluster, location, (workspace, schedule, group)),
                (include_namespaces, exclude_namespaces, include_resources, exclude_resources),
                (label_selector, cluster_resources, ttl_seconds, created_unix_ms, volumes, offline),
            )| pb::BackupSpec {
                name,
                cluster,
                location,
                include_namespaces,
                exclude_namespaces,
                include_resources,
                exclude_resources,
                label_selector: label_selector.to_owned(),
                cluster_resources,
                ttl_seconds,
                created_unix_ms,
                workspace,
                schedule,
                group,
                volumes,
                offline,
            },
        );
    let resource = (
        (free_text(), some_text(), free_text(), some_text()),
        (any::<bool>(), any::<u64>(), vec(free_text(), 0..3)),
        vec(
            prop::sample::select(vec!["/Namespace", "example.com/Widget", "apps/Deployment"]),
            0..3,
        ),
    )
        .prop_map(
            |((group, version, kind, resource), (namespaced, count, parts), depends_on)| {
                pb::ResourceSummary {
                    group,
                    version,
                    kind,
                    resource,
                    namespaced,
                    count,
                    parts,
                    depends_on: depends_on.into_iter().map(str::to_owned).collect(),
                }
            },
        );
    let problem = (
        (
            free_text(),
            free_text(),
            some_text(),
            free_text(),
            free_text(),
            some_text(),
        ),
        1..=8_i32,
        free_text(),
    )
        .prop_map(
            |((group, version, kind, resource, namespace, name), outcome, message)| pb::ItemResult {
                item: Some(pb::ItemRef {
                    group,
                    version,
                    kind,
                    resource,
                    namespace,
                    name,
                }),
                outcome,
                message,
            },
        );
    let status = status_of(
        (1..=5_i32).boxed(),
        vec(resource, 0..3).boxed(),
        vec(problem, 0..3).boxed(),
        free_text().boxed(),
    );
    (
        1..=super::FORMAT_VERSION,
        spec,
        status,
        vec(free_text(), 0..3),
        vec(stored_object(32..33), 0..3),
    )
        .prop_map(
            |(format_version, spec, status, index, objects)| pb::BackupManifest {
                format_version,
                spec: Some(spec),
                status: Some(status),
                index,
                objects,
            },
        )
        .boxed()
}

/// Any manifest: plausible or not.
fn manifest() -> impl Strategy<Value = pb::BackupManifest> {
    prop_oneof![plausible_manifest(), any_manifest()]
}

fn any_manifest() -> BoxedStrategy<pb::BackupManifest> {
    (
        prop_oneof![1..=super::FORMAT_VERSION, any::<u32>()],
        prop::option::of(backup_spec()),
        prop::option::of(backup_status()),
        texts(),
        vec(stored_object(0..40), 0..3),
    )
        .prop_map(
            |(format_version, spec, status, index, objects)| pb::BackupManifest {
                format_version,
                spec,
                status,
                index,
                objects,
            },
        )
        .boxed()
}

/// An object a manifest lists: any key and size, a digest of a length in `digest`.
fn stored_object(digest: std::ops::Range<usize>) -> impl Strategy<Value = pb::StoredObject> {
    (text(), any::<u64>(), vec(any::<u8>(), digest)).prop_map(|(key, size, sha256)| pb::StoredObject {
        key,
        size,
        sha256,
    })
}

fn item_index() -> impl Strategy<Value = pb::ItemIndex> {
    vec(
        (prop::option::of(item_ref()), text()).prop_map(|(item, part)| pb::IndexEntry { item, part }),
        0..6,
    )
    .prop_map(|entries| pb::ItemIndex { entries })
}

fn restore_items() -> impl Strategy<Value = pb::RestoreItems> {
    vec(item_result(), 0..6).prop_map(|items| pb::RestoreItems { items })
}

/// What may be done to a valid object to make it hostile.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut at (a position modulo the length).
    Truncate(usize),
    /// One byte XORed with a non-zero mask.
    Flip(usize, u8),
    /// Bytes inserted.
    Insert(usize, Vec<u8>),
    /// A length-delimited field inserted whose length is far more than the bytes left.
    HugeLength(usize, u32, u64),
    /// The same bytes again, appended: repeated fields doubled, singular ones merged.
    Repeat,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        (any::<usize>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Damage::Insert(at, bytes)),
        (
            any::<usize>(),
            1..16_u32,
            prop_oneof![
                Just(u64::MAX),
                Just(1 << 31),
                Just(1 << 32),
                Just(64 << 20),
                any::<u64>()
            ]
        )
            .prop_map(|(at, field, len)| Damage::HugeLength(at, field, len)),
        Just(Damage::Repeat),
    ]
}

/// Up to four damages.
fn damages() -> impl Strategy<Value = Vec<Damage>> {
    vec(damage(), 0..4)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `bytes` with `damages` done to it.
fn damaged(mut bytes: Vec<u8>, damages: &[Damage]) -> Vec<u8> {
    for d in damages {
        let at = |i: usize, len: usize| i % (len + 1);
        match d {
            Damage::Truncate(i) => bytes.truncate(at(*i, bytes.len())),
            Damage::Flip(i, mask) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] ^= mask;
                }
            }
            Damage::Insert(i, more) => {
                let i = at(*i, bytes.len());
                bytes.splice(i..i, more.iter().copied());
            }
            Damage::HugeLength(i, field, len) => {
                let mut field_bytes = Vec::new();
                put_varint(&mut field_bytes, u64::from((field << 3) | 2));
                put_varint(&mut field_bytes, *len);
                field_bytes.extend_from_slice(&[0x0a, 0x00, 0x12]);
                let i = at(*i, bytes.len());
                bytes.splice(i..i, field_bytes);
            }
            Damage::Repeat => bytes.extend_from_within(..),
        }
    }
    bytes
}

/// Valid bytes of a message, or any bytes.
fn encoded_or_any<M: Message + 'static>(message: impl Strategy<Value = M>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (message, damages()).prop_map(|(m, d)| damaged(m.encode_to_vec(), &d)),
        vec(any::<u8>(), 0..512),
    ]
}

fn seal() -> ObjectSeal {
    ObjectSeal::new(&ResourceKeys::new(vec![ResourceKey {
        version: 1,
        bytes: vec![7; 32],
    }]))
    .expect("seal")
}

/// What a location holding `stored` at `key` gives a reader of `T`.
fn read_stored<T: Stored>(key: &str, stored: Vec<u8>) -> sealed_store::Result<Option<T>> {
    RUNTIME.block_on(async {
        let memory = Arc::new(InMemory::new());
        memory
            .put(&Path::from(key), PutPayload::from(stored))
            .await
            .expect("put");
        SealedStore::new(memory, "fuzz", seal()).read::<T>(key).await
    })
}

/// Reads `plain` sealed at `key` and, sealed then damaged, again: the intact seal opens and its
/// plaintext decodes or is refused as corrupt; a damaged seal does not open.
fn sealed_round<T: Stored + std::fmt::Debug>(key: &str, plain: &[u8], damages: &[Damage]) {
    let sealed = seal().seal(key, plain).expect("sealed");
    match read_stored::<T>(key, sealed.clone()) {
        Ok(Some(_)) | Err(sealed_store::Error::Decode { .. }) => {}
        other => panic!("an intact seal: {other:?}"),
    }
    let hostile = damaged(sealed.clone(), damages);
    if hostile != sealed {
        let read = read_stored::<T>(key, hostile);
        assert!(
            matches!(read, Err(sealed_store::Error::Open { .. })),
            "a damaged seal opened: {read:?}"
        );
    }
}

// ---- Manifest, item index, restore items ----

/// Everything a reader does with a decoded manifest: encode it again, print it (times past the
/// year 9999 included), serialize it as the CLI's JSON output does.
fn use_manifest(m: &Manifest) {
    let again = Manifest::decode(&m.encode()).expect("a decoded manifest encodes to a valid one");
    assert_eq!(&again, m);
    let _ = format!("{m:?}");
    let _ = serde_json::to_string(&m.backup).expect("JSON");
    for t in [
        m.backup.spec.origin.created,
        m.backup.status.started,
        m.backup.status.finished,
    ]
    .into_iter()
    .flatten()
    {
        let _ = t.to_string();
    }
}

proptest! {
    #[test]
    fn fuzz_manifest_decodes_or_refuses(bytes in encoded_or_any(manifest())) {
        if let Ok(m) = Manifest::decode(&bytes) {
            use_manifest(&m);
        }
    }

    /// Manifests the domain accepts, with times and counts at their edges: each reads, and
    /// prints.
    #[test]
    fn fuzz_manifest_plausible_reads_and_prints(m in plausible_manifest()) {
        use_manifest(&Manifest::decode(&m.encode_to_vec()).expect("a plausible manifest"));
    }

    #[test]
    fn fuzz_manifest_sealed_in_a_location(m in manifest(), d in damages()) {
        sealed_round::<Manifest>("backups/nightly/manifest.pb", &m.encode_to_vec(), &d);
    }

    #[test]
    fn fuzz_index_part_decodes_or_refuses(bytes in encoded_or_any(item_index())) {
        if let Ok(entries) = Vec::<IndexEntry>::decode(&bytes) {
            assert!(entries.len() <= INDEX_PART_ENTRIES);
            assert_eq!(Vec::<IndexEntry>::decode(&entries.encode()).expect("again"), entries);
        }
    }

    #[test]
    fn fuzz_index_part_sealed_in_a_location(index in item_index(), d in damages()) {
        sealed_round::<Vec<IndexEntry>>("backups/nightly/index/000000.pb", &index.encode_to_vec(), &d);
    }

    #[test]
    fn fuzz_restore_items_decode_or_refuse(bytes in encoded_or_any(restore_items())) {
        if let Ok(items) = Vec::<ItemResult>::decode(&bytes) {
            assert!(items.len() <= RESTORE_PART_ITEMS);
            assert_eq!(Vec::<ItemResult>::decode(&items.encode()).expect("again"), items);
        }
    }

    #[test]
    fn fuzz_restore_items_sealed_in_a_location(items in restore_items(), d in damages()) {
        sealed_round::<Vec<ItemResult>>("restores/r1/items/000000.pb", &items.encode_to_vec(), &d);
    }
}

/// Empty elements (two bytes each on the wire, about a hundred once decoded) in a list the format
/// bounds: one more than the bound is refused before anything is decoded.
#[test]
fn fuzz_lists_longer_than_the_format_allows_are_refused_undecoded() {
    let empties = |n: usize| [0x0a_u8, 0x00].repeat(n);
    let e = Vec::<IndexEntry>::decode(&empties(INDEX_PART_ENTRIES + 1)).expect_err("too many");
    assert!(e.to_string().contains("more than the 10000"), "{e}");
    let e = Vec::<ItemResult>::decode(&empties(RESTORE_PART_ITEMS + 1)).expect_err("too many");
    assert!(e.to_string().contains("more than the 10000"), "{e}");
    // At the bound, the elements are decoded (and these, being empty, refused one by one).
    let e = Vec::<IndexEntry>::decode(&empties(INDEX_PART_ENTRIES)).expect_err("empty entries");
    assert!(e.to_string().contains("IndexEntry.item"), "{e}");
    let full: Vec<IndexEntry> = (0..INDEX_PART_ENTRIES)
        .map(|i| IndexEntry {
            item: crate::model::ItemRef {
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                resource: "configmaps".into(),
                namespace: "shop".into(),
                name: format!("c{i}"),
            },
            part: super::BackupKeys::part("", "v1", "configmaps", 0),
        })
        .collect();
    assert_eq!(
        Vec::<IndexEntry>::decode(&full.encode()).expect("a full part"),
        full
    );
}

// ---- Object parts ----

/// Reads a part to its end or its first error (a reader stops there); returns the bytes of the
/// lines it gave as objects, and whether it ended on an error.
fn read_part(reader: std::io::Result<PartReader<&[u8]>>) -> (usize, bool) {
    let Ok(reader) = reader else {
        return (0, true);
    };
    let mut shown = 0;
    for object in reader {
        match object {
            Ok(v) => shown += serde_json::to_vec(&v).expect("JSON").len(),
            Err(_) => return (shown, true),
        }
    }
    (shown, false)
}

/// Lines for a part: JSON values Kubernetes might return, or any bytes (newlines included).
fn lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let line = prop_oneof![
        text().prop_map(
            |t| serde_json::to_vec(&serde_json::json!({"kind": "ConfigMap", "data": {"k": t}}))
                .expect("JSON")
        ),
        vec(any::<u8>(), 0..64),
        (1..2_000_usize).prop_map(|n| format!("[{}0]", "0,".repeat(n)).into_bytes()),
    ];
    vec(line, 0..8)
}

fn compress(plain: &[u8], level: i32) -> Vec<u8> {
    zstd::encode_all(plain, level).expect("compress")
}

proptest! {
    #[test]
    fn fuzz_object_part_of_any_bytes(bytes in vec(any::<u8>(), 0..1024)) {
        let _ = read_part(PartReader::new(bytes.as_slice()));
    }

    /// Frames of valid and invalid lines, then damaged, read under small limits: a frame past
    /// them fails (the lines past them unread: the reader holds no more than the limits).
    #[test]
    fn fuzz_object_part_hostile_frames(lines in lines(), level in 1..=3_i32, d in damages()) {
        const LIMIT: u64 = 8 << 10;
        const LINE_MAX: u64 = 1 << 10;
        let plain = lines.join(&b'\n');
        let frame = compress(&plain, level);
        let hostile = damaged(frame.clone(), &d);
        let (_, failed) = read_part(PartReader::with_limits(hostile.as_slice(), LIMIT, LINE_MAX));
        // Only the long arrays can pass the line limit: the other lines are shorter than it.
        if hostile == frame && (plain.len() as u64 > LIMIT || lines.iter().any(|l| l.len() as u64 > LINE_MAX)) {
            prop_assert!(failed, "a part past its limits read to its end");
        }
    }

    /// zstd bombs: a frame of a few dozen bytes holding one long line of spaces in a JSON string
    /// reads if it is within the limit and fails once it passes it, however far.
    #[test]
    fn fuzz_object_part_zstd_bombs(size in 0..(256_usize << 10)) {
        const LIMIT: u64 = 64 << 10;
        let mut plain = vec![b' '; size + 3];
        plain[0] = b'"';
        plain[size + 1] = b'"';
        plain[size + 2] = b'\n';
        let frame = compress(&plain, 3);
        prop_assert!(frame.len() < 256, "{} bytes", frame.len());
        let (shown, failed) = read_part(PartReader::with_limits(frame.as_slice(), LIMIT, LIMIT));
        prop_assert_eq!(failed, plain.len() as u64 > LIMIT);
        prop_assert_eq!(shown, if failed { 0 } else { size + 2 });
    }
}

/// A frame asking for a 128 MiB window (zstd's own default maximum) fails at once, unread; the
/// same objects in an 8 MiB window read.
#[test]
fn fuzz_object_part_asking_for_a_large_window_fails() {
    let frame = |window_log| {
        let mut encoder = zstd::Encoder::new(Vec::new(), 3).expect("encoder");
        encoder.window_log(window_log).expect("window");
        encoder.long_distance_matching(true).expect("long");
        for _ in 0..64 {
            encoder
                .write_all(format!("\"{}\"\n", "x".repeat(1000)).as_bytes())
                .expect("write");
        }
        encoder.finish().expect("finish")
    };
    let large = frame(27);
    assert_eq!(read_part(PartReader::new(large.as_slice())), (0, true));
    let within = frame(23);
    assert_eq!(read_part(PartReader::new(within.as_slice())), (64 * 1002, false));
}

// ---- The sealed-object header ----

proptest! {
    #[test]
    fn fuzz_sealed_header_of_any_bytes(bytes in prop_oneof![
        vec(any::<u8>(), 0..128),
        (any::<u32>(), vec(any::<u8>(), 0..64)).prop_map(|(v, rest)| {
            let mut b = b"ck".to_vec();
            b.extend_from_slice(&v.to_be_bytes());
            b.extend(rest);
            b
        }),
    ]) {
        let expected = (bytes.len() >= 6 && bytes.starts_with(b"ck"))
            .then(|| u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]));
        prop_assert_eq!(key_version_of(&bytes), expected);
        prop_assert!(seal().open("backups/nightly/manifest.pb", &bytes).is_err());
    }

    #[test]
    fn fuzz_sealed_objects_damaged_never_open(plain in vec(any::<u8>(), 0..256), d in damages()) {
        let key = "backups/nightly/index/000001.pb";
        let sealed = seal().seal(key, &plain).expect("sealed");
        let hostile = damaged(sealed.clone(), &d);
        let _ = key_version_of(&hostile);
        let opened = seal().open(key, &hostile);
        if hostile == sealed {
            prop_assert_eq!(opened.expect("intact"), plain);
        } else {
            prop_assert!(opened.is_err());
        }
    }
}

// ---- Keyring versions ----

fn keyring_version() -> impl Strategy<Value = pb::KeyringVersion> {
    let key = prop_oneof![vec(any::<u8>(), 32..=32), vec(any::<u8>(), 0..40)];
    (any::<u32>(), key.clone(), key, int64()).prop_map(
        |(version, resource_key, repository_key, created_unix_ms)| pb::KeyringVersion {
            version,
            resource_key,
            repository_key,
            created_unix_ms,
        },
    )
}

proptest! {
    #[test]
    fn fuzz_keyring_version_decodes_or_refuses(bytes in encoded_or_any(keyring_version())) {
        if let Ok(v) = KeyVersion::decode(&bytes) {
            prop_assert_eq!(KeyVersion::decode(&v.encode()).expect("again").resource, v.resource);
            let _ = v.created.to_string();
        }
    }

    /// Objects under `keyring/` of any name and content: read as versions or refused, by name.
    #[test]
    fn fuzz_keyring_objects_of_any_name(names in vec(prop_oneof![
        (0..1_000_000_u32).prop_map(|v| format!("{v:06}")),
        text(),
    ], 0..4), body in vec(any::<u8>(), 0..64)) {
        let read = RUNTIME.block_on(async {
            let memory = InMemory::new();
            for name in &names {
                let Ok(path) = Path::parse(format!("keyring/{name}")) else { continue };
                memory.put(&path, PutPayload::from(body.clone())).await.expect("put");
            }
            super::keyring::read(&memory, "fuzz").await
        });
        if let Ok(versions) = read {
            prop_assert!(versions.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }
}

// ---- The volume repository's config and key files; volume keys ----

fn repo_config() -> impl Strategy<Value = pb::RepoConfig> {
    let bound = prop_oneof![
        Just(0),
        Just(256 << 10),
        Just(4 << 20),
        Just(1 << 31),
        Just(u32::MAX),
        any::<u32>()
    ];
    (
        any::<u32>(),
        vec(any::<u8>(), 0..40),
        bound.clone(),
        bound.clone(),
        bound,
    )
        .prop_map(|(version, id, chunk_min, chunk_avg, chunk_max)| pb::RepoConfig {
            version,
            id,
            chunk_min,
            chunk_avg,
            chunk_max,
        })
}

proptest! {
    #[test]
    fn fuzz_repository_config_and_key_files(
        config in encoded_or_any(repo_config()),
        key_files in vec(vec(any::<u8>(), 0..96), 0..3),
    ) {
        let kek = Key::from_raw(&[3; 32], "kek").expect("kek");
        let (config, unwrapped) = RUNTIME.block_on(async {
            let memory = InMemory::new();
            memory.put(&Path::from(VolumeKeys::config()), PutPayload::from(config)).await.expect("put");
            for (i, file) in key_files.iter().enumerate() {
                let key = VolumeKeys::object(VolumeDir::Keys, &format!("{i:032x}"));
                memory.put(&Path::from(key), PutPayload::from(file.clone())).await.expect("put");
            }
            let config = super::repository_key::config(&memory, "fuzz").await;
            let unwrapped = match &config {
                Ok(Some(c)) => Some(super::repository_key::unwrap(&memory, "fuzz", c, &kek).await),
                _ => None,
            };
            (config, unwrapped)
        });
        prop_assert!(!matches!(config, Ok(None)), "a config was stored");
        if let Some(unwrapped) = unwrapped {
            prop_assert!(matches!(unwrapped, Ok(None)), "a forged key file opened");
        }
    }

    #[test]
    fn fuzz_volume_keys_from_any_name(id in text()) {
        for dir in [VolumeDir::Keys, VolumeDir::Data, VolumeDir::Index, VolumeDir::Snapshots, VolumeDir::Prune] {
            let key = VolumeKeys::object(dir, &id);
            prop_assert!(key.starts_with("volumes/") && key.ends_with(id.as_str()));
        }
    }
}

/// Objects larger than their kind may be are refused unread; at the limit they are read.
#[test]
fn fuzz_objects_over_their_limit_are_refused() {
    let kind = ObjectKind::KeyringVersion;
    let max = usize::try_from(kind.max_bytes()).expect("fits");
    for (size, refused) in [(max, false), (max + 1, true)] {
        let read = RUNTIME.block_on(async {
            let memory = InMemory::new();
            memory
                .put(&Path::from("keyring/000001"), PutPayload::from(vec![0; size]))
                .await
                .expect("put");
            sealed_store::read_bounded(&memory, "fuzz", kind, "keyring/000001").await
        });
        assert_eq!(
            matches!(read, Err(sealed_store::Error::TooLarge { .. })),
            refused,
            "{size}"
        );
    }
}
