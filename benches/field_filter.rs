//! Field-filter throughput: `cargo bench --bench field_filter -- --warm-up-time 1 --measurement-time 3`
//!
//! `filter_streamed` runs the streamed filter (`fields.stream = true`) over
//! the same bodies in 16 KiB chunks, the size Pingora reads an upstream body
//! in; `filter_streamed/100MiB` is one 100 MiB body of the same entities.
//!
//! Bodies are `{"data":[vessel, …],"meta":{…}}` with vessel-like entities of
//! 24 fields; the plan removes half of them and masks three (last 4, hash,
//! full). Throughput is in input bytes. `serde_json_tree` parses into a
//! `serde_json::Value`, removes the same fields and serializes again: the
//! parse-to-tree alternative the streaming filter is measured against.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/vessels.rs"]
mod vessels;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sentinel::fields::{
    check_write, filter_chunked, filter_response, Binding, FieldPlan, StreamFilter, UnknownFields,
};
use vessels::{document, entity, permission, TENANT};

fn bench(c: &mut Criterion) {
    let entity = entity();
    let perm = permission();
    let plan = FieldPlan::build(Some(&entity), &TENANT, &[&perm], UnknownFields::Remove);
    let binding = Binding::parse("$.data[*]").unwrap();

    let mut g = c.benchmark_group("field_filter");
    for (label, size) in [("1KiB", 1024), ("10KiB", 10 * 1024), ("1MiB", 1024 * 1024)] {
        let doc = document(size);
        let mut out = Vec::with_capacity(doc.len());
        // Sanity: valid output, half the fields gone.
        filter_response(doc.as_bytes(), &binding, &plan, &mut out).unwrap();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap();
        g.throughput(Throughput::Bytes(doc.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("filter_response", label),
            &doc,
            |b, doc| {
                b.iter(|| {
                    out.clear();
                    filter_response(black_box(doc.as_bytes()), &binding, &plan, &mut out).unwrap()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("filter_streamed", label),
            &doc,
            |b, doc| {
                b.iter(|| {
                    out.clear();
                    filter_chunked(
                        black_box(doc.as_bytes()),
                        16 * 1024,
                        &binding,
                        &plan,
                        &mut out,
                    )
                    .unwrap()
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("check_write", label), &doc, |b, doc| {
            b.iter(|| check_write(black_box(doc.as_bytes()), &binding, &plan).unwrap())
        });
        if size > 1024 {
            g.bench_with_input(
                BenchmarkId::new("serde_json_tree", label),
                &doc,
                |b, doc| {
                    b.iter(|| {
                        let mut v: serde_json::Value =
                            serde_json::from_slice(black_box(doc.as_bytes())).unwrap();
                        if let Some(serde_json::Value::Array(items)) = v.get_mut("data") {
                            for item in items {
                                if let Some(obj) = item.as_object_mut() {
                                    obj.retain(|k, _| plan.access(k).readable());
                                }
                            }
                        }
                        serde_json::to_vec(&v).unwrap()
                    })
                },
            );
        }
    }
    g.finish();

    // 100 MiB through the streamed filter, 16 KiB at a time, output dropped
    // chunk by chunk: what a streamed bound route does per byte.
    let mut g = c.benchmark_group("field_filter_stream");
    g.sample_size(10);
    let doc = document(1024 * 1024);
    // One 1 MiB document's `data` array repeated: `{"data":[e…,e…, …]}`.
    let inner = doc
        .split_once("\"data\":[")
        .and_then(|(_, rest)| rest.rsplit_once("],"))
        .map(|(items, _)| items)
        .unwrap();
    let mut big = Vec::with_capacity(101 << 20);
    big.extend_from_slice(b"{\"data\":[");
    while big.len() < 100 << 20 {
        if big.len() > 10 {
            big.push(b',');
        }
        big.extend_from_slice(inner.as_bytes());
    }
    big.extend_from_slice(b"]}");
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("filter_streamed/100MiB", |b| {
        b.iter(|| {
            let mut f = StreamFilter::new(&binding, &plan);
            let mut out = Vec::with_capacity(32 * 1024);
            for chunk in big.chunks(16 * 1024) {
                out.clear();
                f.push(black_box(chunk), &mut out).unwrap();
            }
            f.finish(&mut out).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("field_plan");
    g.bench_function("build_24_fields", |b| {
        b.iter(|| {
            FieldPlan::build(
                Some(black_box(&entity)),
                &TENANT,
                &[&perm, &perm],
                UnknownFields::Remove,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
