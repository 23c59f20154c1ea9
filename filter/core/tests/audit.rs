//! The audit event builder on real smart-HTTP exchanges captured from git and `git
//! http-backend` (see `fixtures/audit/make-audit-fixtures.py`): each request and response is
//! fed whole, one byte at a time, and split at every offset, through the same read loop the
//! filter uses (pack data skipped unread), and every way must give the same event.

use gitgate_core::api::{EventKind, GateEvent, RefOutcome};
use gitgate_core::audit::{AuditSection, EventBuilder, RequestEnd, RequestStart};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/audit/", $name, ".bin")).as_slice()
    };
}

const MAIN_OID: &str = "8f9c9e1d0ff006ed11c5f4565cb4f48e08be43cb";
const TAG_OID: &str = "aeb70690d6d0f49e917a7b0e98811d97409976d6";

/// One exchange: how the request looked and what went each way.
struct Exchange {
    method: &'static str,
    path: &'static str,
    git_protocol: Option<&'static str>,
    content_type: &'static str,
    request: &'static [u8],
    response: &'static [u8],
}

/// Feeds a response chunk the way the filter does: skip what the observer does not want,
/// read only as much as it asks for. Returns the bytes actually read.
fn feed_response(builder: &mut EventBuilder, chunk: &[u8]) -> usize {
    let mut at = 0;
    let mut read = 0;
    while at < chunk.len() {
        let left = chunk.len() - at;
        let skip = usize::try_from(builder.response_skippable())
            .unwrap_or(usize::MAX)
            .min(left);
        if skip > 0 {
            builder.skip_response(skip as u64);
            at += skip;
            continue;
        }
        let want = builder
            .response_wanted()
            .unwrap_or(usize::MAX)
            .clamp(1, left);
        builder.on_response_body(&chunk[at..at + want]);
        read += want;
        at += want;
    }
    read
}

fn run(exchange: &Exchange, request: &[&[u8]], response: &[&[u8]]) -> (GateEvent, usize) {
    let start = RequestStart {
        request_id: "req-1".into(),
        started_ms: 1000,
        method: exchange.method,
        path: exchange.path,
        prefix: "/",
        git_protocol: exchange.git_protocol,
        content_encoding: None,
        identity: None,
    };
    let mut builder = EventBuilder::start(start, &AuditSection::default());
    for piece in request {
        if builder.reads_request_body() {
            builder.on_request_body(piece);
        } else {
            builder.count_request_body(piece.len() as u64);
        }
    }
    builder.on_response_headers(Some(exchange.content_type));
    let read = response
        .iter()
        .map(|piece| feed_response(&mut builder, piece))
        .sum();
    let end = RequestEnd {
        ended_ms: 1010,
        status: Some(200),
        ..RequestEnd::default()
    };
    (builder.finish(end), read)
}

/// The event of `exchange`, the same for every split of its request and its response.
fn event_of(exchange: &Exchange) -> GateEvent {
    let (whole, _) = run(exchange, &[exchange.request], &[exchange.response]);
    let bytes_in: Vec<&[u8]> = exchange.request.chunks(1).collect();
    let bytes_out: Vec<&[u8]> = exchange.response.chunks(1).collect();
    assert_eq!(
        run(exchange, &bytes_in, &bytes_out).0,
        whole,
        "byte by byte"
    );
    for at in 0..=exchange.request.len() {
        let (a, b) = exchange.request.split_at(at);
        assert_eq!(
            run(exchange, &[a, b], &[exchange.response]).0,
            whole,
            "request split at {at}"
        );
    }
    for at in 0..=exchange.response.len() {
        let (a, b) = exchange.response.split_at(at);
        assert_eq!(
            run(exchange, &[exchange.request], &[a, b]).0,
            whole,
            "response split at {at}"
        );
    }
    assert_eq!(whole.bytes_in, exchange.request.len() as u64);
    assert_eq!(whole.bytes_out, exchange.response.len() as u64);
    whole
}

const UPLOAD_ADVERTISEMENT: &str = "application/x-git-upload-pack-advertisement";
const UPLOAD_RESULT: &str = "application/x-git-upload-pack-result";
const RECEIVE_RESULT: &str = "application/x-git-receive-pack-result";

#[test]
fn a_v0_advertisement_records_every_ref_but_peeled_ones() {
    let event = event_of(&Exchange {
        method: "GET",
        path: "/demo.git/info/refs?service=git-upload-pack",
        git_protocol: None,
        content_type: UPLOAD_ADVERTISEMENT,
        request: b"",
        response: fixture!("clone-v0-1-info-refs-response"),
    });
    assert_eq!(event.kind, Some(EventKind::Read));
    assert_eq!(event.service, "info-refs");
    assert_eq!(event.advertised_service.as_deref(), Some("git-upload-pack"));
    assert_eq!(event.protocol_version, 0);
    assert_eq!(event.refs, ["HEAD", "refs/heads/main", "refs/tags/v1"]);
    assert!(event.notes.is_empty(), "{:?}", event.notes);
}

#[test]
fn a_v2_advertisement_has_no_refs_and_says_version_2() {
    let event = event_of(&Exchange {
        method: "GET",
        path: "/demo.git/info/refs?service=git-upload-pack",
        git_protocol: Some("version=2"),
        content_type: UPLOAD_ADVERTISEMENT,
        request: b"",
        response: fixture!("clone-v2-1-info-refs-response"),
    });
    assert_eq!(event.protocol_version, 2);
    assert!(event.refs.is_empty());
}

#[test]
fn a_v2_ls_refs_records_the_refs_it_returned() {
    let event = event_of(&Exchange {
        method: "POST",
        path: "/demo.git/git-upload-pack",
        git_protocol: Some("version=2"),
        content_type: UPLOAD_RESULT,
        request: fixture!("clone-v2-2-upload-pack-request"),
        response: fixture!("clone-v2-2-upload-pack-response"),
    });
    assert_eq!(event.service, "upload-pack");
    assert_eq!(event.refs, ["HEAD", "refs/heads/main", "refs/tags/v1"]);
    assert_eq!(
        event.notes,
        [
            "command: ls-refs",
            "ref-prefix: HEAD refs/heads/ refs/tags/"
        ]
    );
    assert!(event.pack.is_none());
}

#[test]
fn a_v2_clone_records_its_wants_and_the_pack_header_without_reading_the_pack() {
    let exchange = Exchange {
        method: "POST",
        path: "/demo.git/git-upload-pack",
        git_protocol: Some("version=2"),
        content_type: UPLOAD_RESULT,
        request: fixture!("clone-v2-3-upload-pack-request"),
        response: fixture!("clone-v2-3-upload-pack-response"),
    };
    let event = event_of(&exchange);
    assert_eq!(event.wants, [MAIN_OID, MAIN_OID, TAG_OID]);
    assert_eq!(event.notes, ["command: fetch"]);
    let pack = event.pack.expect("a pack summary");
    // Three commits, three trees, three blobs and the tag.
    assert_eq!(pack.objects, 10);
    assert!(pack.bytes > 12 && pack.bytes < exchange.response.len() as u64);
    let (_, read) = run(&exchange, &[exchange.request], &[exchange.response]);
    assert!(
        read < 80,
        "read {read} of {} response bytes: the pack should be skipped",
        exchange.response.len()
    );
}

#[test]
fn a_v0_clone_records_the_wants_without_the_capabilities() {
    let event = event_of(&Exchange {
        method: "POST",
        path: "/demo.git/git-upload-pack",
        git_protocol: None,
        content_type: UPLOAD_RESULT,
        request: fixture!("clone-v0-2-upload-pack-request"),
        response: fixture!("clone-v0-2-upload-pack-response"),
    });
    assert_eq!(event.wants, [MAIN_OID, TAG_OID]);
    assert_eq!(event.pack.map(|p| p.objects), Some(10));
    assert!(event.notes.is_empty(), "{:?}", event.notes);
}

#[test]
fn a_v2_fetch_records_the_one_new_object() {
    let event = event_of(&Exchange {
        method: "POST",
        path: "/demo.git/git-upload-pack",
        git_protocol: Some("version=2"),
        content_type: UPLOAD_RESULT,
        request: fixture!("fetch-v2-3-upload-pack-request"),
        response: fixture!("fetch-v2-3-upload-pack-response"),
    });
    assert_eq!(event.wants, ["3395957cd2802eaa5ad10f83c073109279a0375f"]);
    assert_eq!(event.pack.map(|p| p.objects), Some(1));
}

#[test]
fn a_push_records_the_upstreams_outcome_per_ref_and_the_hooks_words() {
    let event = event_of(&Exchange {
        method: "POST",
        path: "/demo.git/git-receive-pack",
        git_protocol: None,
        content_type: RECEIVE_RESULT,
        request: fixture!("push-2-receive-pack-request"),
        response: fixture!("push-2-receive-pack-response"),
    });
    assert_eq!(event.kind, Some(EventKind::Write));
    let ok = |name: &str| RefOutcome {
        refname: name.into(),
        ok: true,
        reason: None,
    };
    assert_eq!(
        event.upstream,
        [ok("refs/heads/main"), ok("refs/heads/feature")]
    );
    assert_eq!(event.shown, ["hook: checked"]);
}

#[test]
fn a_push_refused_by_the_upstream_records_the_ng_and_what_the_pusher_saw() {
    let event = event_of(&Exchange {
        method: "POST",
        path: "/demo.git/git-receive-pack",
        git_protocol: None,
        content_type: RECEIVE_RESULT,
        request: fixture!("push-refused-2-receive-pack-request"),
        response: fixture!("push-refused-2-receive-pack-response"),
    });
    assert_eq!(
        event.upstream,
        [RefOutcome {
            refname: "refs/heads/locked".into(),
            ok: false,
            reason: Some("pre-receive hook declined".into()),
        }]
    );
    assert_eq!(
        event.shown,
        [
            "hook: checked",
            "locked is locked",
            "ng refs/heads/locked pre-receive hook declined"
        ]
    );
}

#[test]
fn a_receive_pack_advertisement_records_the_refs_a_pusher_saw() {
    let event = event_of(&Exchange {
        method: "GET",
        path: "/demo.git/info/refs?service=git-receive-pack",
        git_protocol: None,
        content_type: "application/x-git-receive-pack-advertisement",
        request: b"",
        response: fixture!("push-1-info-refs-response"),
    });
    assert_eq!(
        event.advertised_service.as_deref(),
        Some("git-receive-pack")
    );
    assert_eq!(event.kind, Some(EventKind::Read));
    assert!(
        event.refs.contains(&"refs/heads/main".to_owned()),
        "{:?}",
        event.refs
    );
}

#[test]
fn lists_over_their_cap_are_cut_with_a_note() {
    let start = RequestStart {
        request_id: "r".into(),
        method: "GET",
        path: "/demo.git/info/refs?service=git-upload-pack",
        prefix: "/",
        ..RequestStart::default()
    };
    let section = AuditSection {
        max_refs: 2,
        ..AuditSection::default()
    };
    let mut builder = EventBuilder::start(start, &section);
    builder.on_response_headers(Some(UPLOAD_ADVERTISEMENT));
    builder.on_response_body(fixture!("clone-v0-1-info-refs-response"));
    let event = builder.finish(RequestEnd::default());
    assert_eq!(event.refs, ["HEAD", "refs/heads/main"]);
    assert_eq!(event.notes, ["refs: 3 seen, first 2 kept"]);
}

#[test]
fn garbage_in_any_body_is_a_note_never_a_panic() {
    let mut state = 0x2545_f491_u32;
    for round in 0..200 {
        let mut body = fixture!("clone-v2-3-upload-pack-response").to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let at = state as usize % body.len();
            body[at] = (state >> 8) as u8;
        }
        let exchange = Exchange {
            method: "POST",
            path: "/demo.git/git-upload-pack",
            git_protocol: Some("version=2"),
            content_type: if round % 2 == 0 {
                UPLOAD_RESULT
            } else {
                RECEIVE_RESULT
            },
            request: fixture!("clone-v2-3-upload-pack-request"),
            response: Box::leak(body.into_boxed_slice()),
        };
        let (event, _) = run(&exchange, &[exchange.request], &[exchange.response]);
        assert_eq!(event.bytes_out, exchange.response.len() as u64);
    }
}
