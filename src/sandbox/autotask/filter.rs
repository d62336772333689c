//! The query filter language of `POST {Entity}/query` and `GET {Entity}/query?search=`: the
//! `QueryModel` parsed and checked against the entity's fields, and evaluated against records,
//! as `conditions.rs` does for ConnectWise.

use super::*;

/// A parsed `QueryModel`.
pub(super) struct Parsed {
    pub(super) max_records: i64,
    pub(super) include: Vec<&'static str>,
    pub(super) filter: Vec<Cond>,
    /// The query as given, for paging tokens.
    pub(super) normalized: Value,
}

pub(super) enum Cond {
    Group {
        or: bool,
        items: Vec<Cond>,
    },
    Leaf {
        op: Op,
        field: &'static str,
        udf: Option<String>,
        value: Value,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    NotEq,
    Gt,
    Gte,
    Lt,
    Lte,
    BeginsWith,
    EndsWith,
    Contains,
    Exist,
    NotExist,
    In,
    NotIn,
}

pub(super) fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

pub(super) fn entity_singular(entity: &str) -> &str {
    match entity {
        "Companies" => "Company",
        "Contracts" => "Contract",
        "ContractServices" => "ContractService",
        "ContractServiceUnits" => "ContractServiceUnit",
        "Services" => "Service",
        other => other,
    }
}

pub(super) fn field_of(entity: &str, name: &str) -> Result<&'static str, String> {
    fields_of(entity)
        .iter()
        .find(|f| f.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| {
            format!(
                "Unable to find {name} in the {} Entity.",
                entity_singular(entity)
            )
        })
}

impl Parsed {
    pub(super) fn from_json(entity: &str, raw: &Value) -> Result<Parsed, String> {
        let Some(obj) = raw.as_object() else {
            return Err("The query must be a JSON object {\"filter\":[…]}".into());
        };
        for key in obj.keys() {
            if !["maxrecords", "includefields", "filter"]
                .contains(&key.to_ascii_lowercase().as_str())
            {
                return Err(format!("Unknown query property {key}"));
            }
        }
        let max_records = match get_ci(obj, "MaxRecords") {
            None | Some(Value::Null) => AT_MAX_RECORDS,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=AT_MAX_RECORDS).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "MaxRecords must be a whole number from 1 to {AT_MAX_RECORDS}; got {v}"
                    ));
                }
            },
        };
        let mut include = Vec::new();
        match get_ci(obj, "IncludeFields") {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                for n in names {
                    let Some(n) = n.as_str() else {
                        return Err("IncludeFields must be an array of field names".into());
                    };
                    include.push(field_of(entity, n)?);
                }
            }
            Some(_) => return Err("IncludeFields must be an array of field names".into()),
        }
        let filter = match get_ci(obj, "filter") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|i| cond(entity, i))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(
                    "A query needs at least one filter item, for example {\"op\":\"gte\",\"field\":\"id\",\"value\":0}"
                        .into(),
                );
            }
        };
        Ok(Parsed {
            max_records,
            include,
            filter,
            normalized: raw.clone(),
        })
    }

    pub(super) fn matches(&self, record: &Value) -> bool {
        self.filter.iter().all(|c| eval(c, record))
    }

    pub(super) fn project(&self, record: &Value) -> Value {
        if self.include.is_empty() {
            return record.clone();
        }
        let mut out = Map::new();
        out.insert("id".into(), record["id"].clone());
        for f in &self.include {
            out.insert((*f).to_string(), record[*f].clone());
        }
        // The real API keeps `userDefinedFields` (often `[]`) on entities that have them, whatever
        // `IncludeFields` names (the @apigrate README's limited-fields example shows it).
        if let Some(udfs) = record.get("userDefinedFields") {
            out.insert("userDefinedFields".into(), udfs.clone());
        }
        Value::Object(out)
    }
}

pub(super) fn cond(entity: &str, item: &Value) -> Result<Cond, String> {
    let Some(obj) = item.as_object() else {
        return Err(format!("A filter item must be an object; got {item}"));
    };
    let op_text = get_ci(obj, "op")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("A filter item needs an op: {item}"))?;
    let op_lower = op_text.to_ascii_lowercase();
    if op_lower == "and" || op_lower == "or" {
        let items = match get_ci(obj, "items") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => return Err(format!("The {op_text} group needs a non-empty items array")),
        };
        return Ok(Cond::Group {
            or: op_lower == "or",
            items: items
                .iter()
                .map(|i| cond(entity, i))
                .collect::<Result<Vec<_>, _>>()?,
        });
    }
    let op = match op_lower.as_str() {
        "eq" => Op::Eq,
        "noteq" => Op::NotEq,
        "gt" => Op::Gt,
        "gte" => Op::Gte,
        "lt" => Op::Lt,
        "lte" => Op::Lte,
        "beginswith" => Op::BeginsWith,
        "endswith" => Op::EndsWith,
        "contains" => Op::Contains,
        "exist" => Op::Exist,
        "notexist" => Op::NotExist,
        "in" => Op::In,
        "notin" => Op::NotIn,
        _ => return Err(format!("Unknown filter op {op_text}")),
    };
    let name = get_ci(obj, "field")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("A filter item needs a field: {item}"))?;
    let udf = match get_ci(obj, "udf") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(v) => return Err(format!("udf must be true or false; got {v}")),
    };
    let (field, udf) = if udf {
        if !fields_of(entity).contains(&"userDefinedFields") {
            return Err(format!(
                "The {} Entity has no user-defined fields",
                entity_singular(entity)
            ));
        }
        ("userDefinedFields", Some(name.to_string()))
    } else {
        (field_of(entity, name)?, None)
    };
    let value = get_ci(obj, "value").cloned().unwrap_or(Value::Null);
    match op {
        Op::Exist | Op::NotExist => {}
        Op::In | Op::NotIn => {
            if !value.is_array() {
                return Err(format!("The {op_text} op needs an array value"));
            }
        }
        _ => {
            if value.is_null() || value.is_array() || value.is_object() {
                return Err(format!(
                    "The {op_text} op on {name} needs a value (string, number or boolean); got {value}"
                ));
            }
        }
    }
    Ok(Cond::Leaf {
        op,
        field,
        udf,
        value,
    })
}

pub(super) fn field_value<'a>(record: &'a Value, field: &str, udf: &Option<String>) -> &'a Value {
    match udf {
        None => &record[field],
        Some(name) => record["userDefinedFields"]
            .as_array()
            .and_then(|a| {
                a.iter().find(|u| {
                    u["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .map(|u| &u["value"])
            .unwrap_or(&Value::Null),
    }
}

/// A date or date-time as the instant Autotask reads it: with `Z` or an offset, that instant; a
/// date-time without one, UTC (REST date-times are UTC); a bare `YYYY-MM-DD`, midnight of that
/// date in US Eastern time, where date-only values are kept, so a bare date compares equal to
/// the stored value of the same date and can never shift to the day before.
pub(super) fn instant(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    if text.len() == 10
        && let Ok(d) = text.parse::<Date>()
    {
        return eastern().to_timestamp(d.at(0, 0, 0, 0)).ok();
    }
    let dt = text.parse::<jiff::civil::DateTime>().ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

pub(super) fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn compare(record: &Value, wanted: &Value) -> Option<std::cmp::Ordering> {
    match record {
        Value::Number(n) => {
            let a = n.as_f64()?;
            let b = match wanted {
                Value::Number(m) => m.as_f64()?,
                Value::String(s) => s.trim().parse::<f64>().ok()?,
                _ => return None,
            };
            a.partial_cmp(&b)
        }
        Value::Bool(a) => {
            let b = match wanted {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return None,
            };
            Some(a.cmp(&b))
        }
        Value::String(a) => {
            let b = as_text(wanted)?;
            if let (Some(x), Some(y)) = (instant(a), instant(&b)) {
                return Some(x.cmp(&y));
            }
            Some(a.to_lowercase().cmp(&b.to_lowercase()))
        }
        _ => None,
    }
}

pub(super) fn eval(c: &Cond, record: &Value) -> bool {
    use std::cmp::Ordering::*;
    match c {
        Cond::Group { or: true, items } => items.iter().any(|i| eval(i, record)),
        Cond::Group { or: false, items } => items.iter().all(|i| eval(i, record)),
        Cond::Leaf {
            op,
            field,
            udf,
            value,
        } => {
            let v = field_value(record, field, udf);
            let present = !v.is_null();
            match op {
                Op::Exist => present,
                Op::NotExist => !present,
                _ if !present => false,
                Op::Eq => compare(v, value) == Some(Equal),
                Op::NotEq => compare(v, value).is_some_and(|o| o != Equal),
                Op::Gt => compare(v, value) == Some(Greater),
                Op::Gte => matches!(compare(v, value), Some(Greater | Equal)),
                Op::Lt => compare(v, value) == Some(Less),
                Op::Lte => matches!(compare(v, value), Some(Less | Equal)),
                Op::BeginsWith | Op::EndsWith | Op::Contains => {
                    let (Some(a), Some(b)) = (as_text(v), as_text(value)) else {
                        return false;
                    };
                    let (a, b) = (a.to_lowercase(), b.to_lowercase());
                    match op {
                        Op::BeginsWith => a.starts_with(&b),
                        Op::EndsWith => a.ends_with(&b),
                        _ => a.contains(&b),
                    }
                }
                Op::In | Op::NotIn => {
                    let any = value
                        .as_array()
                        .is_some_and(|vs| vs.iter().any(|w| compare(v, w) == Some(Equal)));
                    if *op == Op::In { any } else { !any }
                }
            }
        }
    }
}
