use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A value that must never reach a log: `Debug` prints `[redacted]`, only `expose` reads it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

// Serialization exists only so defaults can seed figment; defaults never hold a real secret.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A database URL whose password, if any, is redacted in `Debug`; host and database stay visible.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(pub(crate) Secret);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
    /// The URL with its password replaced — in the userinfo or as a `password=` query
    /// parameter — safe to log. A URL that does not parse is hidden whole: it may still hold one.
    pub fn redacted(&self) -> String {
        let raw = self.0.expose();
        if raw.starts_with("sqlite:") && !raw.contains('@') && !raw.contains("password") {
            return raw.to_string();
        }
        let Ok(mut url) = url::Url::parse(raw) else {
            return "[unparsable database URL]".to_string();
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        if url
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"))
        {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k.eq_ignore_ascii_case("password") {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string().replace("%2A%2A%2A", "***")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}
