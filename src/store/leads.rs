//! Leads: create, read, update, search and page (keyset paging, newest first).

use super::{
    ensure_tenant, like_pattern, now_ms, Arg, JsonText, SqlBuilder, Stage, Store, StoreError,
    Timestamp, Visibility,
};
use crate::store::audit::{insert_audit, AuditEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Paging defaults: 50 rows is a screenful in the dashboard; 200 bounds what one request can
/// make the database read and the server serialise.
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;
/// Longest accepted lead id, name or free-text field (bytes); CRM ids are far shorter.
pub const MAX_FIELD_LEN: usize = 256;
/// Largest accepted `attributes` document (bytes of JSON).
pub const MAX_ATTRIBUTES_LEN: usize = 16 * 1024;

/// A prospective customer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Lead {
    pub id: String,
    #[serde(rename = "tenant")]
    pub tenant_id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    /// Where the lead came from (web, referral, cold, event, ...); a scoring feature.
    pub source: Option<String>,
    /// The agent who owns the lead (their token's `sub`).
    pub owner_id: Option<String>,
    pub team: Option<String>,
    pub stage: Stage,
    /// Latest score in 0..1, absent until the first scored call.
    pub score: Option<f64>,
    pub prior_contacts: i64,
    pub last_contact_at: Option<Timestamp>,
    /// Free-form CRM attributes (JSON object).
    #[schema(value_type = Object)]
    pub attributes: JsonText<serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl<T: Serialize> Serialize for JsonText<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

pub(crate) const LEAD_COLUMNS: &str = "id, tenant_id, name, email, phone, company, source, \
    owner_id, team, stage, score, prior_contacts, last_contact_at, attributes, created_at, \
    updated_at";

/// The body of `POST /v1/leads`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    /// The CRM's id for the lead; generated (UUIDv7) when absent.
    pub id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub source: Option<String>,
    pub owner_id: Option<String>,
    pub team: Option<String>,
    pub prior_contacts: Option<i64>,
    pub last_contact_at: Option<Timestamp>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
}

/// The body of `PATCH /v1/leads/{id}`: absent fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub source: Option<String>,
    pub owner_id: Option<String>,
    pub team: Option<String>,
    pub prior_contacts: Option<i64>,
    pub last_contact_at: Option<Timestamp>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<serde_json::Value>,
}

/// Search and paging parameters of `GET /v1/leads`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LeadQuery {
    /// Case-insensitive substring of name, email, phone or company.
    pub q: Option<String>,
    pub stage: Option<Stage>,
    pub owner_id: Option<String>,
    pub team: Option<String>,
    /// Page size, 1..=200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of leads, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadPage {
    pub items: Vec<Lead>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn check_len(field: &str, v: Option<&str>) -> Result<(), StoreError> {
    match v {
        Some(s) if s.len() > MAX_FIELD_LEN => Err(StoreError::Invalid(format!(
            "{field} is longer than {MAX_FIELD_LEN} bytes"
        ))),
        _ => Ok(()),
    }
}

fn check_attributes(v: Option<&serde_json::Value>) -> Result<Option<String>, StoreError> {
    match v {
        None => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => {
            let text = serde_json::to_string(v)?;
            if text.len() > MAX_ATTRIBUTES_LEN {
                return Err(StoreError::Invalid(format!(
                    "attributes are larger than {MAX_ATTRIBUTES_LEN} bytes"
                )));
            }
            Ok(Some(text))
        }
        Some(_) => Err(StoreError::Invalid(
            "attributes must be a JSON object".into(),
        )),
    }
}

impl NewLead {
    fn validate(&self) -> Result<(), StoreError> {
        if self.name.trim().is_empty() {
            return Err(StoreError::Invalid("name must not be empty".into()));
        }
        if let Some(id) = &self.id {
            if id.is_empty() || id.chars().any(|c| c.is_control() || c == '/') {
                return Err(StoreError::Invalid(
                    "id must be non-empty without '/'".into(),
                ));
            }
        }
        for (f, v) in [
            ("id", &self.id),
            ("email", &self.email),
            ("phone", &self.phone),
            ("company", &self.company),
            ("source", &self.source),
            ("owner_id", &self.owner_id),
            ("team", &self.team),
        ] {
            check_len(f, v.as_deref())?;
        }
        check_len("name", Some(&self.name))?;
        if self.prior_contacts.is_some_and(|n| n < 0) {
            return Err(StoreError::Invalid(
                "prior_contacts must not be negative".into(),
            ));
        }
        Ok(())
    }
}

impl LeadPatch {
    fn validate(&self) -> Result<(), StoreError> {
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(StoreError::Invalid("name must not be empty".into()));
        }
        for (f, v) in [
            ("name", &self.name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("company", &self.company),
            ("source", &self.source),
            ("owner_id", &self.owner_id),
            ("team", &self.team),
        ] {
            check_len(f, v.as_deref())?;
        }
        if self.prior_contacts.is_some_and(|n| n < 0) {
            return Err(StoreError::Invalid(
                "prior_contacts must not be negative".into(),
            ));
        }
        Ok(())
    }
}

fn parse_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let bad = || StoreError::Invalid("malformed cursor".into());
    let (ms, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((ms.parse().map_err(|_| bad())?, id.to_owned()))
}

impl Store {
    /// Creates a lead; `Conflict` when the tenant already has one with that id.
    pub async fn create_lead(
        &self,
        tenant: &str,
        lead: &NewLead,
        audit: &AuditEntry,
    ) -> Result<Lead, StoreError> {
        lead.validate()?;
        let attributes = check_attributes(lead.attributes.as_ref())?.unwrap_or_else(|| "{}".into());
        let id = lead
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        ensure_tenant(&mut tx, tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO leads (tenant_id, id, name, email, phone, company, source, owner_id,
                 team, stage, prior_contacts, last_contact_at, attributes, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'new', $10, $11, $12, $13, $13)
             ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(tenant)
        .bind(&id)
        .bind(&lead.name)
        .bind(lead.email.as_deref())
        .bind(lead.phone.as_deref())
        .bind(lead.company.as_deref())
        .bind(lead.source.as_deref())
        .bind(lead.owner_id.as_deref())
        .bind(lead.team.as_deref())
        .bind(lead.prior_contacts.unwrap_or(0))
        .bind(lead.last_contact_at.map(Timestamp::ms))
        .bind(&attributes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("lead `{id}` already exists")));
        }
        insert_audit(&mut tx, tenant, audit, "lead.create", "lead", &id).await?;
        let created = fetch_lead(&mut tx, tenant, &id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(created)
    }

    /// One lead of the tenant, if it exists.
    pub async fn get_lead(&self, tenant: &str, id: &str) -> Result<Option<Lead>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_lead(&mut conn, tenant, id).await
    }

    /// Applies `patch`; `NotFound` when the lead does not exist.
    pub async fn update_lead(
        &self,
        tenant: &str,
        id: &str,
        patch: &LeadPatch,
        audit: &AuditEntry,
    ) -> Result<Lead, StoreError> {
        patch.validate()?;
        let attributes = check_attributes(patch.attributes.as_ref())?;
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE leads SET
                name = COALESCE($3, name), email = COALESCE($4, email),
                phone = COALESCE($5, phone), company = COALESCE($6, company),
                source = COALESCE($7, source), owner_id = COALESCE($8, owner_id),
                team = COALESCE($9, team), prior_contacts = COALESCE($10, prior_contacts),
                last_contact_at = COALESCE($11, last_contact_at),
                attributes = COALESCE($12, attributes), updated_at = $13
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .bind(patch.name.as_deref())
        .bind(patch.email.as_deref())
        .bind(patch.phone.as_deref())
        .bind(patch.company.as_deref())
        .bind(patch.source.as_deref())
        .bind(patch.owner_id.as_deref())
        .bind(patch.team.as_deref())
        .bind(patch.prior_contacts)
        .bind(patch.last_contact_at.map(Timestamp::ms))
        .bind(attributes)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, tenant, audit, "lead.update", "lead", id).await?;
        let lead = fetch_lead(&mut tx, tenant, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(lead)
    }

    /// Searches the tenant's leads visible under `vis`, newest first, one page at a time.
    pub async fn list_leads(
        &self,
        tenant: &str,
        vis: &Visibility,
        query: &LeadQuery,
    ) -> Result<LeadPage, StoreError> {
        let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let mut b = SqlBuilder::new(&format!("SELECT {LEAD_COLUMNS} FROM leads WHERE "));
        b.push("tenant_id = ?", [Arg::Text(tenant.into())]);
        match vis {
            Visibility::Tenant => {}
            Visibility::Team(t) => {
                b.push(" AND team = ?", [Arg::Text(t.clone())]);
            }
            Visibility::Owner(o) => {
                b.push(" AND owner_id = ?", [Arg::Text(o.clone())]);
            }
        }
        if let Some(q) = query.q.as_deref().filter(|q| !q.trim().is_empty()) {
            let p = like_pattern(q.trim());
            b.push(
                " AND (LOWER(name) LIKE ? ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE ? ESCAPE '\\' \
                 OR LOWER(COALESCE(company, '')) LIKE ? ESCAPE '\\' OR COALESCE(phone, '') LIKE ? ESCAPE '\\')",
                [Arg::Text(p.clone()), Arg::Text(p.clone()), Arg::Text(p.clone()), Arg::Text(p)],
            );
        }
        if let Some(st) = query.stage {
            b.push(" AND stage = ?", [Arg::Text(st.as_str().into())]);
        }
        if let Some(o) = &query.owner_id {
            b.push(" AND owner_id = ?", [Arg::Text(o.clone())]);
        }
        if let Some(t) = &query.team {
            b.push(" AND team = ?", [Arg::Text(t.clone())]);
        }
        if let Some(c) = &query.cursor {
            let (ms, id) = parse_cursor(c)?;
            b.push(
                " AND (created_at < ? OR (created_at = ? AND id < ?))",
                [Arg::Int(ms), Arg::Int(ms), Arg::Text(id)],
            );
        }
        // One row past the page says whether there is a next page.
        b.push(
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            [Arg::Int(i64::from(limit) + 1)],
        );
        let mut items: Vec<Lead> = b.query_as().fetch_all(&self.pool).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items
                .last()
                .map(|l| format!("{}:{}", l.created_at.ms(), l.id))
        } else {
            None
        };
        Ok(LeadPage { items, next_cursor })
    }
}

pub(crate) async fn fetch_lead(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<Lead>, StoreError> {
    let lead = sqlx::query_as::<_, Lead>(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(lead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_split_at_the_first_colon() {
        assert_eq!(parse_cursor("17:a:b").unwrap(), (17, "a:b".to_owned()));
        assert!(parse_cursor("x:a").is_err());
        assert!(parse_cursor("17").is_err());
    }

    #[test]
    fn new_lead_validation_rejects_bad_input() {
        let ok = NewLead {
            name: "Ada".into(),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let empty = NewLead {
            name: " ".into(),
            ..Default::default()
        };
        assert!(empty.validate().is_err());
        let long = NewLead {
            name: "x".repeat(MAX_FIELD_LEN + 1),
            ..Default::default()
        };
        assert!(long.validate().is_err());
        let slash = NewLead {
            id: Some("a/b".into()),
            name: "A".into(),
            ..Default::default()
        };
        assert!(slash.validate().is_err());
        assert!(check_attributes(Some(&serde_json::json!([1]))).is_err());
    }
}
