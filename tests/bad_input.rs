//! Hostile and malformed input costs the sender its connection or an exact error code, never the
//! broker's health: a well-behaved client producing and fetching alongside keeps working
//! throughout and reads back exactly what it wrote.
//!
//! Every case asserts one outcome: a specific Kafka error code, or that the broker closed the
//! connection without answering (EOF, or a reset when our unread bytes were still queued).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest, ProduceRequest,
    ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rill_core::client::{Admin, Client, ClientConfig, NewTopic, LATEST};
use rill_core::records::{decode_records, encode_batch, ProducerRecord};
use rill_core::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use common::BrokerProc;

/// Topic the well-behaved client produces to and fetches from.
const GOOD: &str = "good";
/// Topic the bad produce requests aim at; only this test writes to it.
const VICTIM: &str = "victim";
/// `message.max.bytes` of the broker under test.
const MAX_MESSAGE_BYTES: usize = 16 * 1024;
const MIB: usize = 1 << 20;
/// Kafka's default `socket.request.max.bytes`.
const DEFAULT_MAX_REQUEST: i64 = 100 * MIB as i64;
/// Versions used for well-formed requests (inside the broker's ranges).
const PRODUCE_V: i16 = 7;
const CREATE_TOPICS_V: i16 = 5;
const CORRELATION_ID: i32 = 4242;
/// How long any single expectation may take.
const WAIT: Duration = Duration::from_secs(15);
/// Extra resident memory the broker may gain during the oversized-claim cases; far below the
/// 100 MiB it would need to honour one claim.
const RSS_SLACK_KIB: u64 = 48 * 1024;
/// Peers that each claim a 100 MiB frame and hold it open.
const HOLDERS: usize = 16;
/// Extra address space the broker may map meanwhile: half of what reserving every claimed frame
/// up front would take (untouched reservations do not show in RSS, but they do here).
const VM_SLACK_KIB: u64 = (HOLDERS as u64 * 100 * 1024) / 2;

// Batch layout (magic v2): magic at 16, CRC-32C at 17..21 over 21..end, record count at 57..61.
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const CRC_FROM: usize = 21;
const RECORD_COUNT_AT: usize = 57;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// CRC-32C (Castagnoli), bitwise: enough for a few test batches.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// One magic-v2 batch of `n` records with values of `value_len` bytes.
fn batch(n: usize, value_len: usize, tag: &str) -> BytesMut {
    let records: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord {
            key: Some(Bytes::from(format!("{tag}-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_len])),
            ..Default::default()
        })
        .collect();
    BytesMut::from(&encode_batch(&records, Compression::None, now_ms()).expect("encode batch")[..])
}

/// `n` gzip-compressed records.
fn gzip_batch(n: usize, tag: &str) -> BytesMut {
    let recs: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord {
            key: Some(Bytes::from(format!("{tag}-{i}"))),
            value: Some(Bytes::from(vec![b'x'; 10])),
            ..Default::default()
        })
        .collect();
    BytesMut::from(&encode_batch(&recs, kafka_protocol::records::Compression::Gzip, now_ms()).expect("encode")[..])
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(10_000).with_topic_data(vec![TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))])])
}

fn request_frame<M: Encodable>(key: ApiKey, version: i16, body: &M) -> BytesMut {
    wire::encode_request(key, version, CORRELATION_ID, "bad-input", body).expect("encode request")
}

/// Overwrite the API version in an encoded request frame (after the length and the API key).
fn patch_version(frame: &mut BytesMut, version: i16) {
    frame[6..8].copy_from_slice(&version.to_be_bytes());
}

/// A v1 request header for `key`/`version` with an empty body, framed.
fn bare_header_frame(key: i16, version: i16) -> BytesMut {
    let mut f = BytesMut::new();
    f.put_i32(0);
    f.put_i16(key);
    f.put_i16(version);
    f.put_i32(CORRELATION_ID);
    f.put_i16(9);
    f.put_slice(b"bad-input");
    let len = (f.len() - 4) as i32;
    f[0..4].copy_from_slice(&len.to_be_bytes());
    f
}

async fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).await.expect("connect to broker");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Write bytes the broker may refuse midway: a reset or broken pipe means it already closed,
/// which `expect_closed` then confirms.
async fn send(s: &mut TcpStream, bytes: &[u8], case: &str) {
    if let Err(e) = s.write_all(bytes).await {
        use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
        assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "{case}: write failed: {e}");
    }
}

/// The broker must close the connection without sending a byte.
async fn expect_closed(s: &mut TcpStream, case: &str) {
    let mut buf = [0u8; 256];
    match timeout(WAIT, s.read(&mut buf)).await {
        Err(_) => panic!("{case}: the broker kept the connection open for {WAIT:?}"),
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => panic!("{case}: the broker answered ({n} bytes: {:?}) instead of closing", &buf[..n]),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("{case}: read failed: {e}"),
    }
}

/// Read one response frame (without its length prefix), or say why there is none.
async fn read_response(s: &mut TcpStream) -> Result<Bytes, String> {
    let read = async {
        let len = s.read_i32().await.map_err(|e| format!("no frame: {e}"))?;
        if !(0..=16 * MIB as i32).contains(&len) {
            return Err(format!("response frame of {len} bytes"));
        }
        let mut body = vec![0u8; len as usize];
        s.read_exact(&mut body).await.map_err(|e| format!("frame cut short: {e}"))?;
        Ok(Bytes::from(body))
    };
    timeout(WAIT, read).await.map_err(|_| format!("no answer within {WAIT:?}"))?
}

/// Send one well-formed request on a fresh raw connection and decode the answer.
async fn raw_call<R: Request>(addr: &str, req: &R, version: i16, case: &str) -> R::Response {
    let key = ApiKey::try_from(R::KEY).expect("known API key");
    let mut s = connect(addr).await;
    s.write_all(&request_frame(key, version, req)).await.unwrap_or_else(|e| panic!("{case}: write: {e}"));
    let frame = read_response(&mut s).await.unwrap_or_else(|e| panic!("{case}: {e}"));
    let (id, resp) = wire::decode_response::<R::Response>(key, version, frame)
        .unwrap_or_else(|e| panic!("{case}: undecodable answer: {e}"));
    assert_eq!(id, CORRELATION_ID, "{case}: correlation id");
    resp
}

/// A `kB` field of /proc/<pid>/status, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The broker's resident memory now and at its peak, and its address space, in KiB.
fn memory(pid: u32) -> (u64, u64, u64) {
    (proc_status_kib(pid, "VmRSS"), proc_status_kib(pid, "VmHWM"), proc_status_kib(pid, "VmSize"))
}

/// A client that produces 5-record batches to [`GOOD`] and fetches them back, round after round,
/// checking that every record it reads is the one it wrote at that offset.
struct GoodClient {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(usize, usize), String>>,
}

impl GoodClient {
    fn start(addr: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(good_loop(addr.to_string(), stop.clone(), rounds.clone()));
        Self { stop, rounds, task }
    }

    /// Wait until the client completes two more rounds after `case`: it keeps working.
    async fn still_working(&mut self, case: &str) {
        let target = self.rounds.load(Ordering::SeqCst) + 2;
        let deadline = Instant::now() + WAIT;
        while self.rounds.load(Ordering::SeqCst) < target {
            if self.task.is_finished() {
                let res = (&mut self.task).await;
                panic!("after {case}: the good client stopped: {res:?}");
            }
            assert!(Instant::now() < deadline, "after {case}: the good client made no progress in {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stop, drain, and return (records written, records read back in order).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        match timeout(WAIT * 2, self.task).await {
            Err(_) => panic!("the good client did not finish"),
            Ok(Err(e)) => panic!("the good client panicked: {e}"),
            Ok(Ok(Err(e))) => panic!("the good client failed: {e}"),
            Ok(Ok(Ok(counts))) => counts,
        }
    }
}

async fn good_loop(addr: String, stop: Arc<AtomicBool>, rounds: Arc<AtomicU64>) -> Result<(usize, usize), String> {
    let client = Client::connect(ClientConfig::new(addr)).await.map_err(|e| format!("connect: {e}"))?;
    let mut written: Vec<Bytes> = Vec::new();
    let mut next = 0i64;
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let values: Vec<Bytes> = (0..5).map(|j| Bytes::from(format!("good-{round}-{j}"))).collect();
        let records: Vec<ProducerRecord> = values
            .iter()
            .map(|v| ProducerRecord {
                key: Some(Bytes::from(format!("k{round}"))),
                value: Some(v.clone()),
                ..Default::default()
            })
            .collect();
        let batch = encode_batch(&records, Compression::None, now_ms()).map_err(|e| format!("encode: {e}"))?;
        let base = client.produce(GOOD, 0, batch, -1).await.map_err(|e| format!("round {round}: produce: {e}"))?;
        if base != written.len() as i64 {
            return Err(format!("round {round}: batch written at offset {base}, expected {}", written.len()));
        }
        written.extend(values);
        read_some(&client, &mut next, &written).await?;
        round += 1;
        rounds.store(round, Ordering::SeqCst);
    }
    let deadline = Instant::now() + WAIT;
    while next < written.len() as i64 {
        if Instant::now() > deadline {
            return Err(format!("read back {next} of {} records before giving up", written.len()));
        }
        read_some(&client, &mut next, &written).await?;
    }
    Ok((written.len(), next as usize))
}

/// Fetch from `next` and check each record against what was written at its offset.
async fn read_some(client: &Client, next: &mut i64, written: &[Bytes]) -> Result<(), String> {
    let fetched = client.fetch(GOOD, 0, *next, MIB as i32, 50).await.map_err(|e| format!("fetch at {next}: {e}"))?;
    for r in decode_records(fetched.records, *next).map_err(|e| format!("decode at {next}: {e}"))? {
        if r.offset != *next {
            return Err(format!("read offset {} where {next} was expected", r.offset));
        }
        let wrote = written.get(r.offset as usize).ok_or_else(|| format!("read offset {}, never written", r.offset))?;
        if r.value.as_ref() != Some(wrote) {
            return Err(format!("offset {}: read {:?}, wrote {:?}", r.offset, r.value, wrote));
        }
        *next += 1;
    }
    Ok(())
}

/// Shared state of the main test.
struct Ctx {
    addr: String,
    pid: u32,
    rng: StdRng,
    checker: Client,
    victim_end: i64,
    good: GoodClient,
}

impl Ctx {
    /// After a case: the victim partition is unchanged and the good client keeps working.
    async fn after(&mut self, case: &str) {
        let end = self.checker.list_offset(VICTIM, 0, LATEST).await.unwrap_or_else(|e| panic!("after {case}: {e}"));
        assert_eq!(end, self.victim_end, "after {case}: the victim's log end offset moved");
        self.good.still_working(case).await;
    }

    /// Produce `records` to the victim and expect exactly `code` for its one partition.
    async fn produce_expecting(&mut self, case: &str, topic: &str, acks: i16, records: Bytes, code: i16) {
        let resp: ProduceResponse = raw_call(&self.addr, &produce_request(topic, acks, records), PRODUCE_V, case).await;
        assert_eq!(resp.responses.len(), 1, "{case}: topics in answer");
        let parts = &resp.responses[0].partition_responses;
        assert_eq!(parts.len(), 1, "{case}: partitions in answer");
        assert_eq!(parts[0].error_code, code, "{case}: error code");
        assert_eq!(parts[0].base_offset, -1, "{case}: base offset of a rejected batch");
        self.after(case).await;
    }

    /// CreateTopics one topic and expect exactly `code`; the topic must not exist afterwards.
    async fn create_expecting(&mut self, case: &str, topic: CreatableTopic, code: i16) {
        let name = topic.name.0.to_string();
        let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![topic]);
        let resp = raw_call(&self.addr, &req, CREATE_TOPICS_V, case).await;
        assert_eq!(resp.topics.len(), 1, "{case}: topics in answer");
        assert_eq!(resp.topics[0].error_code, code, "{case}: error code ({:?})", resp.topics[0].error_message);
        let topics = Admin::new(&self.checker).list_topics().await.unwrap_or_else(|e| panic!("{case}: list: {e}"));
        assert!(!topics.contains(&name), "{case}: topic {name:?} was created anyway");
        self.after(case).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_never_hurts_a_good_client() {
    let seed = common::seed("bad_input_never_hurts_a_good_client");
    let broker = BrokerProc::start(&[&format!("message.max.bytes={MAX_MESSAGE_BYTES}"), "num.partitions=1"]);
    let addr = broker.addr.clone();
    let checker = Client::connect(ClientConfig::new(addr.clone())).await.expect("connect");
    let admin = Admin::new(&checker);
    let topic =
        |name: &str| NewTopic { name: name.into(), partitions: 1, replication_factor: 1, configs: Default::default() };
    admin.create_topics(&[topic(GOOD), topic(VICTIM)], false).await.expect("create topics");
    checker.produce(VICTIM, 0, batch(3, 10, "seed").freeze(), -1).await.expect("seed the victim");
    let good = GoodClient::start(&addr);
    let mut cx = Ctx { addr, pid: broker.pid(), rng: StdRng::seed_from_u64(seed), checker, victim_end: 3, good };
    cx.good.still_working("start").await;
    let (rss_before, hwm_before, vm_before) = memory(cx.pid);
    eprintln!("broker RSS {rss_before} KiB, peak {hwm_before} KiB, VM {vm_before} KiB before the bad input");

    // Random garbage, then our end closes: the broker drops the connection without answering.
    for i in 0..16 {
        let case = format!("garbage #{i}");
        let len = cx.rng.gen_range(1..=8192);
        let garbage: Vec<u8> = (0..len).map(|_| cx.rng.gen()).collect();
        let mut s = connect(&cx.addr).await;
        send(&mut s, &garbage, &case).await;
        let _ = s.shutdown().await;
        expect_closed(&mut s, &case).await;
        cx.after(&case).await;
    }

    // Length prefixes out of range: closed at once, before any body arrives; nothing allocated.
    let claims: [(&str, i32); 6] = [
        ("2 GiB (0x80000000)", i32::MIN),
        ("2 GiB - 1", i32::MAX),
        ("100 MiB + 1", (DEFAULT_MAX_REQUEST + 1) as i32),
        ("-1", -1),
        ("a random negative length", cx.rng.gen_range(i32::MIN..0)),
        ("a random length over 100 MiB", cx.rng.gen_range(DEFAULT_MAX_REQUEST as i32 + 1..=i32::MAX)),
    ];
    for (what, claim) in claims {
        let case = format!("length prefix claiming {what} ({claim})");
        let mut frame = request_frame(ApiKey::Metadata, 4, &MetadataRequest::default());
        frame[0..4].copy_from_slice(&claim.to_be_bytes());
        let mut s = connect(&cx.addr).await;
        send(&mut s, &frame, &case).await;
        expect_closed(&mut s, &case).await;
        cx.after(&case).await;
    }

    // Claims of exactly the limit are legal, but memory follows what arrives, not what is
    // claimed: peers claiming 100 MiB and sending 64 KiB must not cost 100 MiB each.
    let mut holders = Vec::new();
    for i in 0..HOLDERS {
        let mut s = connect(&cx.addr).await;
        let mut bytes = (DEFAULT_MAX_REQUEST as i32).to_be_bytes().to_vec();
        bytes.extend((0..64 * 1024).map(|_| cx.rng.gen::<u8>()));
        send(&mut s, &bytes, &format!("100 MiB claim #{i}")).await;
        holders.push(s);
    }
    cx.good.still_working("100 MiB claims").await;
    let (rss_now, hwm_now, vm_now) = memory(cx.pid);
    eprintln!("broker RSS {rss_now} KiB, peak {hwm_now} KiB, VM {vm_now} KiB with {HOLDERS} 100 MiB claims open");
    assert!(
        rss_now < rss_before + RSS_SLACK_KIB,
        "broker RSS grew from {rss_before} KiB to {rss_now} KiB on length claims alone"
    );
    assert!(
        hwm_now < hwm_before.max(rss_before) + RSS_SLACK_KIB,
        "broker peak RSS grew from {hwm_before} KiB to {hwm_now} KiB on length claims alone"
    );
    assert!(
        vm_now < vm_before + VM_SLACK_KIB,
        "broker address space grew from {vm_before} KiB to {vm_now} KiB on length claims alone"
    );
    // The body never comes: when the peer hangs up mid-frame the broker closes too.
    for (i, mut s) in holders.into_iter().enumerate() {
        let case = format!("100 MiB claim #{i}, then close");
        s.shutdown().await.expect("shutdown");
        expect_closed(&mut s, &case).await;
    }
    cx.after("100 MiB claims").await;

    // A frame too short to hold a request header.
    let case = "a 6-byte frame (header cut short)";
    let mut s = connect(&cx.addr).await;
    let mut frame = request_frame(ApiKey::Metadata, 4, &MetadataRequest::default());
    frame.truncate(10);
    frame[0..4].copy_from_slice(&6i32.to_be_bytes());
    send(&mut s, &frame, case).await;
    expect_closed(&mut s, case).await;
    cx.after(case).await;

    // A frame cut inside its header, then our end closes.
    let case = "a frame truncated inside its header, then close";
    let mut s = connect(&cx.addr).await;
    let frame = request_frame(ApiKey::Metadata, 4, &MetadataRequest::default());
    send(&mut s, &frame[..9], case).await;
    s.shutdown().await.expect("shutdown");
    expect_closed(&mut s, case).await;
    cx.after(case).await;

    // Unknown API keys.
    for key in [9999i16, i16::MAX, -1] {
        let case = format!("unknown API key {key}");
        let mut s = connect(&cx.addr).await;
        send(&mut s, &bare_header_frame(key, 0), &case).await;
        expect_closed(&mut s, &case).await;
        cx.after(&case).await;
    }

    // A whole frame whose body ends mid-field: undecodable, so closed, and nothing appended.
    let case = "a Produce frame whose body is cut short";
    let frame = request_frame(ApiKey::Produce, PRODUCE_V, &produce_request(VICTIM, 1, batch(2, 10, "cut").freeze()));
    let cut = frame.len() - 20;
    let mut short = BytesMut::from(&frame[..cut]);
    short[0..4].copy_from_slice(&((cut - 4) as i32).to_be_bytes());
    let mut s = connect(&cx.addr).await;
    send(&mut s, &short, case).await;
    expect_closed(&mut s, case).await;
    cx.after(case).await;

    // Arrays claiming 2^31 - 1 elements in a few bytes: the decoder sizes its vector by the
    // claim before reading, which must neither abort the broker nor commit the memory.
    for (key, version) in [(3i16, 1i16), (3, 9), (0, PRODUCE_V), (19, CREATE_TOPICS_V)] {
        let case = format!("API {key} v{version} claiming i32::MAX array elements");
        let mut frame = bare_header_frame(key, version);
        if version >= 9 && key == 3 {
            // Flexible header (v2): client id then an empty tagged-field section.
            frame.put_u8(0);
            frame.put_u8(0xff);
            frame.put_u8(0xff);
            frame.put_u8(0xff);
            frame.put_u8(0xff);
            frame.put_u8(0x07); // compact array length varint: 2^31 - 1 + 1
        } else if key == 0 {
            frame.put_i16(-1); // transactional id: null
            frame.put_i16(1); // acks
            frame.put_i32(1000); // timeout
            frame.put_i32(i32::MAX);
        } else {
            // Metadata v1 topics, CreateTopics v5 topics: a plain i32 count.
            frame.put_i32(i32::MAX);
        }
        let len = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&len.to_be_bytes());
        let mut s = connect(&cx.addr).await;
        send(&mut s, &frame, &case).await;
        expect_closed(&mut s, &case).await;
        cx.after(&case).await;
    }

    // Produce at versions outside the advertised range: closed, and nothing appended.
    for version in [2i16, 99] {
        let case = format!("Produce v{version}");
        let mut frame = request_frame(ApiKey::Produce, 3, &produce_request(VICTIM, 1, batch(2, 10, "v").freeze()));
        patch_version(&mut frame, version);
        let mut s = connect(&cx.addr).await;
        send(&mut s, &frame, &case).await;
        expect_closed(&mut s, &case).await;
        cx.after(&case).await;
    }

    // ApiVersions at an unknown version: a v0-format answer with UNSUPPORTED_VERSION (35) and the
    // list, and the connection stays usable for the retry at v0.
    let case = "ApiVersions v99";
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("bad-input"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let mut frame = request_frame(ApiKey::ApiVersions, 3, &req);
    patch_version(&mut frame, 99);
    let mut s = connect(&cx.addr).await;
    s.write_all(&frame).await.expect("write");
    let mut body = read_response(&mut s).await.unwrap_or_else(|e| panic!("{case}: {e}"));
    let header = ResponseHeader::decode(&mut body, 0).expect("v0 response header");
    assert_eq!(header.correlation_id, CORRELATION_ID, "{case}: correlation id");
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 ApiVersions body");
    assert!(body.is_empty(), "{case}: {} bytes after the v0 body: not the v0 format", body.len());
    assert_eq!(resp.error_code, 35, "{case}: error code");
    assert!(!resp.api_keys.is_empty(), "{case}: the answer must list the supported APIs");
    let av = resp.api_keys.iter().find(|k| k.api_key == ApiKey::ApiVersions as i16).expect("ApiVersions listed");
    assert_eq!(av.min_version, 0, "{case}: ApiVersions v0 must stay supported for the retry");
    let retry = request_frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    s.write_all(&retry).await.expect("write retry");
    let frame = read_response(&mut s).await.unwrap_or_else(|e| panic!("{case}: retry at v0: {e}"));
    let (_, resp) = wire::decode_response::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, frame).expect("decode retry");
    assert_eq!(resp.error_code, 0, "{case}: retry at v0");
    drop(s);
    cx.after(case).await;

    // Produce with broken batches: exact error codes, nothing appended.
    let good_batch = batch(3, 10, "bad");
    let stored = u32::from_be_bytes(good_batch[CRC_AT..CRC_FROM].try_into().expect("4 bytes"));
    assert_eq!(crc32c(&good_batch[CRC_FROM..]), stored, "the test's CRC-32C must match the encoder's");

    let mut flipped = good_batch.clone();
    let at = cx.rng.gen_range(CRC_FROM..flipped.len());
    flipped[at] ^= cx.rng.gen_range(1..=255u8);
    let case = format!("a batch with byte {at} of {} flipped", flipped.len());
    cx.produce_expecting(&case, VICTIM, 1, flipped.freeze(), 2).await;

    let mut magic = good_batch.clone();
    magic[MAGIC_AT] = 1;
    cx.produce_expecting("a batch with magic 1", VICTIM, 1, magic.freeze(), 43).await;

    let big = batch(1, MAX_MESSAGE_BYTES, "big");
    assert!(big.len() > MAX_MESSAGE_BYTES);
    let case = format!("a {}-byte batch over message.max.bytes={MAX_MESSAGE_BYTES}", big.len());
    cx.produce_expecting(&case, VICTIM, 1, big.freeze(), 10).await;

    let mut miscounted = good_batch.clone();
    miscounted[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&4i32.to_be_bytes());
    let crc = crc32c(&miscounted[CRC_FROM..]);
    miscounted[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
    cx.produce_expecting("a batch claiming 4 records over an offset range of 3", VICTIM, 1, miscounted.freeze(), 87)
        .await;

    // A batch that claims 2^31 - 1 records (offset range to match, valid CRC) but holds 3:
    // rejected before it is stored, so nothing that reads the log later can trip on it.
    for codec in [0u8, 1] {
        let mut lying = if codec == 0 { batch(3, 10, "lie") } else { gzip_batch(3, "lie") };
        lying[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        lying[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c(&lying[CRC_FROM..]);
        lying[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_be_bytes());
        let case = format!("a batch (codec {codec}) claiming i32::MAX records");
        cx.produce_expecting(&case, VICTIM, 1, lying.freeze(), 87).await;
    }

    cx.produce_expecting("acks=5", VICTIM, 5, good_batch.clone().freeze(), 21).await;
    cx.produce_expecting("an unknown topic", "no-such-topic", 1, good_batch.clone().freeze(), 3).await;

    // Topic creation with a bad name or a bad config value.
    let new = |name: &str| {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(1)
            .with_replication_factor(1)
    };
    cx.create_expecting("CreateTopics 'bad/name'", new("bad/name"), 17).await;
    let shred = new("shredded").with_configs(vec![CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("cleanup.policy"))
        .with_value(Some(StrBytes::from_static_str("shred")))]);
    cx.create_expecting("CreateTopics cleanup.policy=shred", shred, 40).await;

    // The good client worked throughout and read back exactly what it wrote.
    let rounds = cx.good.rounds.load(Ordering::SeqCst);
    let (written, read) = cx.good.finish().await;
    eprintln!("good client: {rounds} rounds, {written} records written and read back");
    assert!(written > 0);
    assert_eq!(read, written, "the good client read back a different number of records than it wrote");

    // A fresh connection works, and the victim holds exactly its seed records plus this one.
    let fresh = Client::connect(ClientConfig::new(cx.addr.clone())).await.expect("fresh connection");
    let base = fresh.produce(VICTIM, 0, batch(2, 10, "after").freeze(), -1).await.expect("produce after");
    assert_eq!(base, cx.victim_end, "the victim's next offset");
    let data = fresh.fetch(VICTIM, 0, 0, MIB as i32, 100).await.expect("fetch after");
    let keys: Vec<_> = decode_records(data.records, 0).expect("decode").into_iter().map(|r| r.key).collect();
    let want: Vec<_> = ["seed-0", "seed-1", "seed-2", "after-0", "after-1"]
        .iter()
        .map(|k| Some(Bytes::from_static(k.as_bytes())))
        .collect();
    assert_eq!(keys, want, "victim contents");
}

/// A configured `socket.request.max.bytes` is exact: a request of exactly that size is served,
/// one byte more closes the connection.
#[tokio::test(flavor = "multi_thread")]
async fn configured_request_size_limit_is_exact() {
    const LIMIT: usize = 4096;
    let broker = BrokerProc::start(&[&format!("socket.request.max.bytes={LIMIT}")]);
    // A Metadata v4 request for one topic whose name pads the frame to the wanted size (the name
    // is too long to be valid, so the broker answers INVALID_TOPIC_EXCEPTION).
    let frame_of = |size: usize| {
        let probe = |n: usize| {
            let req =
                MetadataRequest::default()
                    .with_allow_auto_topic_creation(false)
                    .with_topics(Some(vec![MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string("x".repeat(n)))))]));
            request_frame(ApiKey::Metadata, 4, &req)
        };
        let overhead = probe(0).len() - 4;
        let f = probe(size - overhead);
        assert_eq!(f.len() - 4, size);
        f
    };

    let mut s = connect(&broker.addr).await;
    s.write_all(&frame_of(LIMIT)).await.expect("write");
    let frame = read_response(&mut s).await.expect("a request of exactly socket.request.max.bytes is served");
    let (_, resp) =
        wire::decode_response::<<MetadataRequest as Request>::Response>(ApiKey::Metadata, 4, frame).expect("decode");
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].error_code, 17, "an over-long topic name");

    let case = format!("a request of socket.request.max.bytes + 1 = {}", LIMIT + 1);
    let mut s = connect(&broker.addr).await;
    send(&mut s, &frame_of(LIMIT + 1), &case).await;
    expect_closed(&mut s, &case).await;

    let client = Client::connect(ClientConfig::new(broker.addr.clone())).await.expect("fresh connection");
    client.metadata(None, false).await.expect("metadata after");
}
