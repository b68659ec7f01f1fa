//! Field security at the edge: which fields of a bound entity a caller may
//! read, see masked or write, and the streaming JSON filter that enforces it.
//!
//! Pure code: no Pingora, no I/O, no clocks. The proxy (1) parses each route's
//! binding once at config load ([`Binding::parse`]), (2) builds a
//! [`FieldPlan`] per (decision, entity) from the allowing permissions, and
//! (3) runs [`filter_response`] on response bodies and [`check_write`] /
//! [`strip_unwritable`] on request bodies. Every failure is an error; callers
//! must never forward a body whose filtering failed (fail closed).
//!
//! See `docs/field-security.md` for the model and its decisions.

mod cache;
mod filter;
mod mask;
mod path;
mod stream;
mod table;

pub use cache::{PlanCache, PlanKey};
pub use filter::{
    check_write, filter_response, strip_unwritable, FilterError, FilterStats, WriteCheck, MAX_DEPTH,
};
pub use path::{Binding, BindingError, Step, MAX_BINDING_STEPS};
pub use sentinel_policy::source::{FieldRule, MaskStyle, Tier};
pub use stream::{filter_chunked, StreamFilter, MAX_HELD};

use sentinel_policy::model::{tier_index, EntityFields, Permission};
use table::KeyTable;
use uuid::Uuid;

/// What happens to a key of an entity object that has no field definition
/// visible to the caller's tenant (in no tier, or another tenant's custom
/// field).
///
/// Entity-level setting; until the policy model carries it (see NOTES.md) the
/// caller passes it to [`FieldPlan::build`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UnknownFields {
    /// Removed from responses; writing it is refused (`FIELD_WRITE_DENIED`).
    #[default]
    Remove,
    /// Passed through both ways: the gateway does not govern it.
    Keep,
}

/// What a route does with a write (POST/PUT/PATCH body) that carries fields
/// the caller may not write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WriteDenied {
    /// Refuse the request: `403 FIELD_WRITE_DENIED` with the field names.
    #[default]
    Reject,
    /// Remove those fields and forward the rest.
    Drop,
}

/// How a masked value is rendered (the field definition's mask style and
/// `mask_keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask {
    pub style: MaskStyle,
    /// For [`MaskStyle::Last`]: how many trailing characters stay visible.
    pub keep: u8,
}

/// The caller's effective access to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Neither readable nor writable: removed from responses, refused in writes.
    Hidden,
    /// Readable as is; not writable.
    Read,
    /// Readable and writable.
    Write,
    /// Readable only in masked form; not writable.
    Masked(Mask),
}

impl Access {
    pub fn readable(self) -> bool {
        !matches!(self, Access::Hidden)
    }

    pub fn writable(self) -> bool {
        matches!(self, Access::Write)
    }
}

/// Restrictiveness of a rule when rules of several allowing permissions meet:
/// the highest wins. `write` grants more than `read` (write ⊇ read), and any
/// `masked` or `hidden` beats both.
fn rank(rule: FieldRule) -> u8 {
    match rule {
        FieldRule::Read => 1,
        FieldRule::Write => 2,
        FieldRule::Masked => 3,
        FieldRule::Hidden => 4,
    }
}

/// The rule the allowing permissions give `name` in `tier`: each permission
/// contributes its rule for the name, or else its `*` rule for the tier, or
/// nothing; the most restrictive contribution wins; no contribution at all is
/// `None` (not readable: deny by default).
/// The `hash` mask's key for a deployment, derived from a secret every
/// gateway replica of the deployment already shares (the assertion signing
/// key): replicas hash alike, and nobody without the secret can confirm a
/// guess. Domain-separated so the digest reveals nothing about the secret.
pub fn hash_key_from_secret(secret: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sentinel field-mask hash key v1\0");
    h.update(secret);
    h.finalize().into()
}

pub fn effective_rule(allowing: &[&Permission], tier: Tier, name: &str) -> Option<FieldRule> {
    let t = tier_index(tier);
    allowing
        .iter()
        .filter_map(|p| {
            let rules = p.fields.get(t)?;
            rules.get(name).or_else(|| rules.get("*")).copied()
        })
        .max_by_key(|r| rank(*r))
}

/// The caller's field access for one entity type, compiled once per
/// (decision, entity, tenant) and consulted per body key without allocation.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    table: KeyTable,
    /// Indexed like `table`.
    access: Box<[Access]>,
    unknown: UnknownFields,
    hash_key: Option<[u8; 32]>,
}

impl FieldPlan {
    /// Compiles the field access of a caller of `tenant` whose request was
    /// allowed by `allowing` (the permissions of `Decision::rules`).
    ///
    /// `entity`: the entity type's definitions (`Snapshot::entity`); `None`
    /// (no definitions) makes every key undefined, so with the default
    /// [`UnknownFields::Remove`] every entity comes out empty. `tenant`: whose
    /// tenant-specific fields are defined fields (the caller's tenant).
    pub fn build(
        entity: Option<&EntityFields>,
        tenant: &Uuid,
        allowing: &[&Permission],
        unknown: UnknownFields,
    ) -> FieldPlan {
        let mut names: Vec<Box<[u8]>> = Vec::new();
        let mut access = Vec::new();
        if let Some(e) = entity {
            let own = e.by_tenant.get(tenant);
            let tenant_fields = own
                .into_iter()
                .flat_map(|m| m.iter())
                // `EntityFields::lookup` prefers a shared definition of the same name.
                .filter(|(n, _)| !e.shared.contains_key(*n));
            for (name, def) in e.shared.iter().chain(tenant_fields) {
                let a = match effective_rule(allowing, def.tier, name) {
                    None | Some(FieldRule::Hidden) => Access::Hidden,
                    Some(FieldRule::Read) => Access::Read,
                    Some(FieldRule::Write) => Access::Write,
                    Some(FieldRule::Masked) => Access::Masked(Mask {
                        style: def.mask,
                        keep: def.mask_keep,
                    }),
                };
                names.push(name.as_bytes().into());
                access.push(a);
            }
        }
        FieldPlan {
            table: KeyTable::new(names),
            access: access.into_boxed_slice(),
            unknown,
            hash_key: None,
        }
    }

    /// Keys the `hash` mask: the digest becomes SHA-256(key ‖ value), so that
    /// low-entropy values (phone numbers, ids) cannot be recovered by
    /// hashing guesses. Use one secret per deployment (or per tenant).
    pub fn with_hash_key(mut self, key: [u8; 32]) -> FieldPlan {
        self.hash_key = Some(key);
        self
    }

    /// The access to the entity key `name` (already unescaped).
    pub fn access(&self, name: &str) -> Access {
        self.access_bytes(name.as_bytes())
    }

    /// How undefined keys are treated.
    pub fn unknown_fields(&self) -> UnknownFields {
        self.unknown
    }

    /// The number of defined fields the plan knows.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// `Some(index)` for a defined field (for duplicate detection), and its access.
    #[inline]
    pub(crate) fn lookup(&self, name: &[u8]) -> (Option<usize>, Access) {
        match self.table.get(name) {
            Some(i) => (
                Some(i),
                self.access.get(i).copied().unwrap_or(Access::Hidden),
            ),
            None => (None, self.unknown_access()),
        }
    }

    /// Like [`FieldPlan::lookup`], trying the defined field `guess` first: upstreams
    /// write the fields of every entity in the same order, so the field that
    /// followed the previous key last time is almost always the next one.
    #[inline]
    pub(crate) fn lookup_guessing(&self, name: &[u8], guess: u32) -> (Option<usize>, Access) {
        let g = guess as usize;
        if guess != u32::MAX && self.table.is(g, name) {
            return (
                Some(g),
                self.access.get(g).copied().unwrap_or(Access::Hidden),
            );
        }
        self.lookup(name)
    }

    fn access_bytes(&self, name: &[u8]) -> Access {
        self.lookup(name).1
    }

    fn unknown_access(&self) -> Access {
        match self.unknown {
            UnknownFields::Remove => Access::Hidden,
            UnknownFields::Keep => Access::Write,
        }
    }

    pub(crate) fn hash_key(&self) -> Option<&[u8; 32]> {
        self.hash_key.as_ref()
    }

    /// Iterates the defined fields and their access (for explain output and tests).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Access)> + '_ {
        (0..self.table.len()).map(move |i| {
            let name = std::str::from_utf8(self.table.name(i)).unwrap_or("");
            (name, self.access.get(i).copied().unwrap_or(Access::Hidden))
        })
    }
}

#[cfg(test)]
mod tests;
