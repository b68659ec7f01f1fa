//! Resources, field definitions and navigation items.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn resources_hierarchy() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t
        .post(
            "/api/v1/resources",
            &admin,
            json!({"resource_type": "Vessel!", "external_id": "", "attributes": 1}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in ["resource_type", "external_id", "attributes"] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    let (s, v) = t
        .post(
            "/api/v1/resources",
            &admin,
            json!({"resource_type": "vessel", "external_id": "v-a1"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["external_id"].is_array());
    let (s, ship) = t
        .post(
            "/api/v1/resources",
            &admin,
            json!({"resource_type": "vessel", "external_id": "v-100", "name": "MV New"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ship}");
    let ship = ship["id"].as_str().unwrap().to_owned();
    let (s, voy) = t
        .post(
            "/api/v1/resources",
            &admin,
            json!({"resource_type": "voyage", "external_id": "voy-100", "parent_id": ship}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{voy}");
    let voy = voy["id"].as_str().unwrap().to_owned();
    let (_, kids) = t
        .get(&format!("/api/v1/resources/{ship}/children"), &admin)
        .await;
    assert_eq!(kids["items"][0]["id"], voy.as_str());
    // Cycle: the ship under its own voyage.
    let (s, v) = t
        .patch(
            &format!("/api/v1/resources/{ship}"),
            &admin,
            json!({"parent_id": voy}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    assert!(d["parent_id"][0].as_str().unwrap().contains("cycle"), "{d}");
    let (s, v) = t.delete(&format!("/api/v1/resources/{ship}"), &admin).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (_, list) = t
        .get(
            "/api/v1/resources?resource_type=vessel&sort=external_id",
            &admin,
        )
        .await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["v-100", "v-a1", "v-a2", "v-a3"]);
    let (s, v) = t
        .patch(
            &format!("/api/v1/resources/{voy}"),
            &admin,
            json!({"parent_id": null, "name": "Free voyage"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = t.delete(&format!("/api/v1/resources/{ship}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn field_definitions_three_tiers() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let root = t.root().await;
    let (_, list) = t
        .get(
            "/api/v1/field-definitions?entity_type=vessel&sort=field_name",
            &admin,
        )
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"charter_rate_usd")
            && names.contains(&"crew_count")
            && names.contains(&"imo"),
        "{names:?}"
    );
    assert!(!names.contains(&"insurance_policy_no"), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // Tenants cannot write platform-wide tiers.
    let (s, v) = t
        .post(
            "/api/v1/field-definitions",
            &admin,
            json!({"entity_type": "vessel", "field_name": "draft", "tier": "core"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let imo = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field_name"] == "imo")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = t
        .patch(
            &format!("/api/v1/field-definitions/{imo}"),
            &admin,
            json!({"sensitivity": "restricted"}),
        )
        .await;
    assert_error(s, &v, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, v) = t
        .patch(
            &format!("/api/v1/field-definitions/{imo}"),
            &root,
            json!({"description": "IMO number"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t.post("/api/v1/field-definitions", &root, json!({"entity_type": "vessel", "field_name": "draft", "tier": "platform_dynamic", "data_type": "number"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["tenant_id"].is_null());
    // Tenant-specific fields, validation, duplicates.
    let (s, v) = t.post("/api/v1/field-definitions", &admin, json!({"entity_type": "vessel", "field_name": "crew_cost", "tier": "tenant_specific", "sensitivity": "restricted", "mask_style": "last", "mask_keep": 3})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["tenant_id"], "11111111-1111-1111-1111-111111111111");
    let fid = v["id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .post(
            "/api/v1/field-definitions",
            &admin,
            json!({"entity_type": "vessel", "field_name": "imo", "tier": "tenant_specific"}),
        )
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    let (s, v) = t.post("/api/v1/field-definitions", &admin, json!({"entity_type": "Vessel", "field_name": "9x", "tier": "gold", "data_type": "blob", "mask_keep": 99})).await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in [
        "entity_type",
        "field_name",
        "tier",
        "data_type",
        "mask_keep",
    ] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    // Another tenant does not see TEST-001's field.
    let a2 = t.admin("TEST-002").await;
    let (s, _) = t
        .get(&format!("/api/v1/field-definitions/{fid}"), &a2)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t
        .delete(&format!("/api/v1/field-definitions/{fid}"), &admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn navigation_items_crud() {
    let t = TestApp::new().await;
    let admin = t.admin("TEST-001").await;
    let (s, v) = t
        .post(
            "/api/v1/navigation",
            &admin,
            json!({"label": "", "path": "no-slash", "resource_type": "vessel"}),
        )
        .await;
    let d = assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR");
    for f in ["label", "path", "action"] {
        assert!(d[f].is_array(), "{f}: {d}");
    }
    let (s, top) = t
        .post(
            "/api/v1/navigation",
            &admin,
            json!({"label": "Reports", "path": "/reports", "sort_order": 99}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{top}");
    let top = top["id"].as_str().unwrap().to_owned();
    let (s, child) = t.post("/api/v1/navigation", &admin, json!({"label": "Emissions", "path": "/reports/emissions", "parent_id": top, "resource_type": "vessel", "action": "read"})).await;
    assert_eq!(s, StatusCode::CREATED, "{child}");
    let child = child["id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .patch(
            &format!("/api/v1/navigation/{child}"),
            &admin,
            json!({"icon": "leaf", "resource_type": null, "action": null}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["resource_type"].is_null());
    let (_, l) = t
        .get(&format!("/api/v1/navigation?parent_id={top}"), &admin)
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let (s, _) = t.delete(&format!("/api/v1/navigation/{top}"), &admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get(&format!("/api/v1/navigation/{child}"), &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
