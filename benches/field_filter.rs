//! Field-filter throughput: `cargo bench --bench field_filter -- --warm-up-time 1 --measurement-time 3`
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
use sentinel::fields::{check_write, filter_response, Binding, FieldPlan, UnknownFields};
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
