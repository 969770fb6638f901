//! Query parameters: declared in a saved query's header, given as `--param name=value`, and bound
//! as typed literals through DataFusion placeholders (`$name`), never spliced into the SQL text.
//!
//! A declaration is one header line: `-- param: <name> <TYPE> [default <value>] [-- <what it is>]`.
//! `TYPE` is `DATE` (YYYY-MM-DD, bound as text in the same form as the `date` partition column, so
//! `date >= $since` compares like the folders sort and still prunes), `TIMESTAMP` (RFC 3339 or
//! YYYY-MM-DD, bound as `Timestamp(ms, UTC)`), `TEXT`, `INT`, `FLOAT` or `BOOL`. A default of `null`
//! makes the parameter optional and NULL when not given (`$queue IS NULL OR queue_name = $queue`);
//! no default makes it required. A TIMESTAMP value (or default) of `now` is the time the query is
//! bound. Quote a text default that has spaces: `default 'Customer Care'`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;

use super::error::{QueryError, Result};

/// Declared type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Date,
    Timestamp,
    Text,
    Int,
    Float,
    Bool,
}

impl ParamType {
    fn parse(s: &str) -> Option<ParamType> {
        Some(match s.to_ascii_uppercase().as_str() {
            "DATE" => ParamType::Date,
            "TIMESTAMP" => ParamType::Timestamp,
            "TEXT" | "STRING" | "VARCHAR" => ParamType::Text,
            "INT" | "BIGINT" | "INTEGER" => ParamType::Int,
            "FLOAT" | "DOUBLE" => ParamType::Float,
            "BOOL" | "BOOLEAN" => ParamType::Bool,
            _ => return None,
        })
    }

    /// What a value of this type looks like, for error messages and `query list`.
    fn expected(self) -> &'static str {
        match self {
            ParamType::Date => "a DATE (YYYY-MM-DD)",
            ParamType::Timestamp => {
                "a TIMESTAMP (RFC 3339, e.g. 2026-01-05T08:00:00Z, YYYY-MM-DD or now)"
            }
            ParamType::Text => "TEXT",
            ParamType::Int => "an INT",
            ParamType::Float => "a FLOAT",
            ParamType::Bool => "a BOOL (true or false)",
        }
    }

    /// The typed literal for `value`, or a message saying what was expected.
    fn scalar(self, value: Option<&str>) -> std::result::Result<ScalarValue, String> {
        let Some(v) = value else {
            return Ok(match self {
                ParamType::Date | ParamType::Text => ScalarValue::Utf8(None),
                ParamType::Timestamp => ScalarValue::TimestampMillisecond(None, Some("UTC".into())),
                ParamType::Int => ScalarValue::Int64(None),
                ParamType::Float => ScalarValue::Float64(None),
                ParamType::Bool => ScalarValue::Boolean(None),
            });
        };
        let bad = || format!("expected {}, got `{v}`", self.expected());
        Ok(match self {
            ParamType::Text => ScalarValue::Utf8(Some(v.to_string())),
            ParamType::Date => {
                let d = crate::lake::partition::parse_day(v).ok_or_else(bad)?;
                ScalarValue::Utf8(Some(d.format("%Y-%m-%d").to_string()))
            }
            ParamType::Timestamp if v.eq_ignore_ascii_case("now") => {
                ScalarValue::TimestampMillisecond(
                    Some(Utc::now().timestamp_millis()),
                    Some("UTC".into()),
                )
            }
            ParamType::Timestamp => {
                let t = DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        crate::lake::partition::parse_day(v)
                            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                    })
                    .ok_or_else(bad)?;
                ScalarValue::TimestampMillisecond(Some(t.timestamp_millis()), Some("UTC".into()))
            }
            ParamType::Int => ScalarValue::Int64(Some(v.parse().map_err(|_| bad())?)),
            ParamType::Float => ScalarValue::Float64(Some(v.parse().map_err(|_| bad())?)),
            ParamType::Bool => ScalarValue::Boolean(Some(match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(bad()),
            })),
        })
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Date => "DATE",
            ParamType::Timestamp => "TIMESTAMP",
            ParamType::Text => "TEXT",
            ParamType::Int => "INT",
            ParamType::Float => "FLOAT",
            ParamType::Bool => "BOOL",
        })
    }
}

/// What happens when a parameter is not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamDefault {
    /// It must be given.
    Required,
    /// It is NULL (an optional filter).
    Null,
    /// It takes this value (checked against the type when the query file is loaded).
    Value(String),
}

/// One `-- param:` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDecl {
    pub name: String,
    pub param_type: ParamType,
    pub default: ParamDefault,
    pub description: String,
}

impl ParamDecl {
    /// Parses the text after `-- param:`.
    pub fn parse(text: &str) -> std::result::Result<ParamDecl, String> {
        let (spec, description) = match text.split_once(" -- ") {
            Some((spec, d)) => (spec.trim(), d.trim().to_string()),
            None => (text.trim(), String::new()),
        };
        let mut words = spec.splitn(3, char::is_whitespace);
        let name = words.next().unwrap_or_default().to_string();
        if !is_identifier(&name) {
            return Err(format!("parameter name `{name}` must be snake_case"));
        }
        let type_word = words.next().unwrap_or_default();
        let param_type = ParamType::parse(type_word).ok_or_else(|| {
            format!("parameter `{name}`: unknown type `{type_word}` (DATE, TIMESTAMP, TEXT, INT, FLOAT, BOOL)")
        })?;
        let default = match words.next().map(str::trim) {
            None | Some("") => ParamDefault::Required,
            Some(rest) => {
                let value = rest
                    .strip_prefix("default")
                    .filter(|v| v.starts_with(char::is_whitespace))
                    .map(str::trim)
                    .ok_or_else(|| {
                        format!("parameter `{name}`: expected `default <value>`, got `{rest}`")
                    })?;
                if value.eq_ignore_ascii_case("null") {
                    ParamDefault::Null
                } else {
                    let unquoted = value
                        .strip_prefix('\'')
                        .and_then(|v| v.strip_suffix('\''))
                        .unwrap_or(value);
                    param_type
                        .scalar(Some(unquoted))
                        .map_err(|e| format!("parameter `{name}` default: {e}"))?;
                    ParamDefault::Value(unquoted.to_string())
                }
            }
        };
        Ok(ParamDecl {
            name,
            param_type,
            default,
            description,
        })
    }
}

impl fmt::Display for ParamDecl {
    /// `since DATE = 1970-01-01`, `queue TEXT = NULL`, `hours INT (required)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.param_type)?;
        match &self.default {
            ParamDefault::Required => write!(f, " (required)"),
            ParamDefault::Null => write!(f, " = NULL"),
            ParamDefault::Value(v) => write!(f, " = {v}"),
        }
    }
}

/// Splits `--param name=value` arguments. The value is everything after the first `=`, taken
/// literally (quotes included): it is bound as data, so it needs no SQL quoting.
pub fn parse_assignments<S: AsRef<str>>(args: &[S]) -> Result<Vec<(String, String)>> {
    let mut seen = BTreeSet::new();
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let (name, value) = a
                .split_once('=')
                .ok_or_else(|| QueryError::Param(format!("`--param {a}`: expected NAME=VALUE")))?;
            let name = name.trim();
            if !is_identifier(name) {
                return Err(QueryError::Param(format!(
                    "`--param {a}`: parameter name `{name}` must be snake_case"
                )));
            }
            if !seen.insert(name.to_string()) {
                return Err(QueryError::Param(format!("parameter `{name}` given twice")));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Binds `given` values to the declared parameters (defaults for the rest). Unknown names,
/// missing required values and values of the wrong type are errors that name the parameter.
pub fn bind(decls: &[ParamDecl], given: &[(String, String)]) -> Result<ParamValues> {
    let declared: Vec<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    if let Some((unknown, _)) = given.iter().find(|(n, _)| !declared.contains(&n.as_str())) {
        return Err(QueryError::Param(format!(
            "unknown parameter `{unknown}`; this query takes: {}",
            if declared.is_empty() {
                "no parameters".to_string()
            } else {
                declared.join(", ")
            }
        )));
    }
    let mut values = HashMap::new();
    for d in decls {
        let given = given
            .iter()
            .find(|(n, _)| *n == d.name)
            .map(|(_, v)| v.as_str());
        let value = match (given, &d.default) {
            (Some(v), _) => Some(v),
            (None, ParamDefault::Value(v)) => Some(v.as_str()),
            (None, ParamDefault::Null) => None,
            (None, ParamDefault::Required) => {
                return Err(QueryError::Param(format!(
                    "missing required parameter: --param {}=<{}>",
                    d.name, d.param_type
                )));
            }
        };
        let scalar = d
            .param_type
            .scalar(value)
            .map_err(|e| QueryError::Param(format!("parameter `{}`: {e}", d.name)))?;
        values.insert(d.name.clone(), scalar);
    }
    Ok(ParamValues::from(values))
}

/// Binds ad-hoc `--param` values (for `wxcc sql`) as TEXT; cast in SQL where another type is
/// needed (`CAST($since AS TIMESTAMP)`).
pub fn bind_text(given: &[(String, String)]) -> ParamValues {
    let values: HashMap<String, ScalarValue> = given
        .iter()
        .map(|(n, v)| (n.clone(), ScalarValue::Utf8(Some(v.clone()))))
        .collect();
    ParamValues::from(values)
}

/// Names of the `$name` placeholders in `sql` (outside comments), for consistency checks.
pub fn placeholders(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in sql.lines() {
        let code = line.split("--").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find('$') {
            let name: String = rest[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name.clone());
            }
            rest = &rest[i + 1 + name.len()..];
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(text: &str) -> ParamDecl {
        ParamDecl::parse(text).expect("declaration parses")
    }

    fn value(values: &ParamValues, name: &str) -> ScalarValue {
        match values {
            ParamValues::Map(m) => m.get(name).expect(name).value.clone(),
            ParamValues::List(_) => panic!("named parameters expected"),
        }
    }

    #[test]
    fn declaration_has_name_type_default_and_description() {
        let d = decl("since DATE default 1970-01-01 -- first UTC day to include");
        assert_eq!(d.name, "since");
        assert_eq!(d.param_type, ParamType::Date);
        assert_eq!(d.default, ParamDefault::Value("1970-01-01".into()));
        assert_eq!(d.description, "first UTC day to include");
        assert_eq!(d.to_string(), "since DATE = 1970-01-01");
        assert_eq!(decl("queue TEXT default null").default, ParamDefault::Null);
        assert_eq!(decl("hours INT").default, ParamDefault::Required);
        assert_eq!(
            decl("queue TEXT default 'Customer Care'").default,
            ParamDefault::Value("Customer Care".into())
        );
    }

    #[test]
    fn malformed_declarations_are_rejected_with_the_reason() {
        for (text, needle) in [
            ("Since DATE", "snake_case"),
            ("since DAY", "unknown type"),
            ("since DATE defaults 1", "expected `default"),
            ("since DATE default 2024-13-01", "YYYY-MM-DD"),
            // chrono's `%Y` alone reads this as the year 26: everything, or nothing.
            ("since DATE default 26-01-05", "YYYY-MM-DD"),
            ("since TIMESTAMP default 26-01-05", "expected"),
        ] {
            let err = ParamDecl::parse(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn values_are_typed_and_defaults_fill_the_rest() {
        let decls = [
            decl("since DATE default 1970-01-01"),
            decl("from TIMESTAMP default 2026-01-05"),
            decl("queue TEXT default null"),
            decl("hours INT default 24"),
            decl("share FLOAT default 0.5"),
            decl("only BOOL default false"),
        ];
        let given = parse_assignments(&["since=2025-07-01", "queue=Support", "hours=48"])
            .expect("assignments");
        let v = bind(&decls, &given).expect("binds");
        assert_eq!(
            value(&v, "since"),
            ScalarValue::Utf8(Some("2025-07-01".into()))
        );
        assert_eq!(
            value(&v, "queue"),
            ScalarValue::Utf8(Some("Support".into()))
        );
        assert_eq!(value(&v, "hours"), ScalarValue::Int64(Some(48)));
        assert_eq!(value(&v, "share"), ScalarValue::Float64(Some(0.5)));
        assert_eq!(value(&v, "only"), ScalarValue::Boolean(Some(false)));
        assert_eq!(
            value(&v, "from"),
            ScalarValue::TimestampMillisecond(Some(1_767_571_200_000), Some("UTC".into()))
        );
        let none = bind(&decls, &[]).expect("defaults");
        assert!(value(&none, "queue").is_null());
    }

    #[test]
    fn hostile_value_is_kept_verbatim_as_one_text_value() {
        let given = parse_assignments(&["queue=x'; DROP TABLE tasks; --"]).expect("parses");
        let v = bind(&[decl("queue TEXT default null")], &given).expect("binds");
        assert_eq!(
            value(&v, "queue"),
            ScalarValue::Utf8(Some("x'; DROP TABLE tasks; --".into()))
        );
    }

    #[test]
    fn unknown_missing_duplicate_and_mistyped_parameters_are_named() {
        let decls = [decl("since DATE"), decl("hours INT default 24")];
        let cases: [(&[&str], &str); 4] = [
            (
                &["since=2025-01-01", "queue=x"],
                "unknown parameter `queue`",
            ),
            (&[], "missing required parameter: --param since=<DATE>"),
            (&["since=yesterday"], "parameter `since`: expected a DATE"),
            (
                &["since=2025-01-01", "hours=many"],
                "parameter `hours`: expected an INT",
            ),
        ];
        for (args, needle) in cases {
            let given = parse_assignments(args).expect("parses");
            let err = bind(&decls, &given).expect_err(needle);
            assert!(err.to_string().contains(needle), "{err}");
        }
        let dup = parse_assignments(&["a=1", "a=2"]).expect_err("duplicate");
        assert!(dup.to_string().contains("given twice"), "{dup}");
        let bad = parse_assignments(&["novalue"]).expect_err("no =");
        assert!(bad.to_string().contains("NAME=VALUE"), "{bad}");
    }

    #[test]
    fn placeholders_are_found_outside_comments() {
        let sql = "-- uses $nothing here\nSELECT * FROM t WHERE d >= $since AND ($queue IS NULL OR q = $queue)";
        let names: Vec<String> = placeholders(sql).into_iter().collect();
        assert_eq!(names, vec!["queue".to_string(), "since".to_string()]);
    }
}
