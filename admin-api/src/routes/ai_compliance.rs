//! `/api/v1/ai/compliance`: the compliance monitor's report of the target
//! tenant (its latest run, JSON or CSV) and a run on demand (docs/ai.md).

use crate::ai::{self, compliance};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{MaybeJson, Query};
use crate::openapi::routes::{doc, Routes};
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub fn router() -> Routes {
    Routes::new()
        .get(
            "/",
            latest,
            doc(
                "ai:read",
                "The tenant's latest compliance report (?format=json, default, or csv)",
            )
            .ok::<compliance::ComplianceReport>()
            .error(
                404,
                "RESOURCE_NOT_FOUND: no compliance run yet, or AI features turned off",
            ),
        )
        .post(
            "/run",
            run,
            doc(
                "ai:read",
                "Run the compliance checks now and store the results (changes no policy)",
            )
            .optional_body::<ComplianceRunRequest>()
            .ok::<compliance::ComplianceReport>()
            .error(404, "RESOURCE_NOT_FOUND: AI features turned off")
            .error(
                503,
                "POLICY_UNAVAILABLE: the stored policy does not compile",
            ),
        )
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceRunRequest {
    /// Regulations to check (GDPR, SOX, HIPAA, ISPS); default: the tenant's
    /// `settings.compliance_regulations`, else the configured list.
    #[serde(default)]
    pub regulations: Option<Vec<String>>,
}

async fn run(
    State(state): State<AppState>,
    caller: Caller,
    MaybeJson(req): MaybeJson<ComplianceRunRequest>,
) -> ApiResult<axum::Json<compliance::ComplianceReport>> {
    ai::require_read(&state, &caller)?;
    let regs = req.unwrap_or_default().regulations;
    if let Some(list) = &regs {
        let mut errs = FieldErrors::new();
        if list.is_empty() {
            errs.add("regulations", "must name at least one regulation");
        }
        for r in list {
            if !compliance::CHECK_SETS.iter().any(|(n, _)| n == r) {
                errs.add(
                    "regulations",
                    format!("`{r}` is not one of GDPR, SOX, HIPAA, ISPS"),
                );
            }
        }
        errs.into_result()?;
    }
    compliance::run(&state, caller.target, chrono::Utc::now(), "on_demand", regs)
        .await
        .map(axum::Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestParams {
    pub format: Option<String>,
}

async fn latest(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<LatestParams>,
) -> ApiResult<Response> {
    ai::require_read(&state, &caller)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(FieldErrors::one("format", "must be `json` or `csv`")),
    };
    let mut tx = state.begin(caller.ctx()).await?;
    let report = compliance::latest(&mut tx, caller.target).await?;
    tx.commit().await?;
    let report = report.ok_or(ApiError::NotFoundBecause(
        "no compliance run yet: POST /api/v1/ai/compliance/run",
    ))?;
    Ok(if csv {
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"compliance.csv\"".to_owned(),
                ),
            ],
            compliance::csv(&report),
        )
            .into_response()
    } else {
        axum::Json(report).into_response()
    })
}
