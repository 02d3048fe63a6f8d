//! The SQL function `journeys(sessions, conversions, models, lookback, steps, transform,
//! half_life)`: one user's sessions (a list of `{t, campaign, channel, id}` in session order)
//! and conversions (a list of `{session, t, v}`, or null) in, the user's records out, for both
//! dimensions:
//! - `credit`: a model's share of one conversion for one key (`share`, `revenue` = share × V);
//! - `path`: a conversion's path (`key` = the keys joined by ` > `, null when empty;
//!   `converted` 1, `value` V) or the user's non-converting path (`non` 1);
//! - `transition`: one step of a path for the Markov chain (`key` → `to`; null `key` is the
//!   start, null `to` the end, named by `model`: `conversion` or `null`).
//!
//! The options are arguments, not captured state, so the executors of a cluster (which
//! register the function with no options) run the plan as the client planned it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Builder, Float64Builder, Int64Builder, ListArray,
    StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Fields, TimestampMicrosecondType,
};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::paths::{self, Conversion, Path, Session};
use super::{Model, Options, PathTransform, DIMENSIONS};

pub const NAME: &str = "journeys";

/// The fields of one record.
static RECORD: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("to", DataType::Utf8, true),
        Field::new("share", DataType::Float64, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("value", crate::input::schema::MONEY, false),
        Field::new("converted", DataType::Int64, false),
        Field::new("non", DataType::Int64, false),
    ])
});

fn return_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(RECORD.clone()),
        false,
    )))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Journeys {
    signature: Signature,
}

pub fn journeys_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Journeys {
        signature: Signature::any(7, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for Journeys {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [sessions, conversions, models, lookback, steps, transform, half_life] =
            args.args.as_slice()
        else {
            return exec_err!("{NAME} takes 7 arguments");
        };
        let options = options(models, lookback, steps, transform, half_life)?;
        let sessions = sessions.to_array(rows)?;
        let conversions = conversions.to_array(rows)?;
        let (Some(sessions), Some(conversions)) = (
            sessions.as_list_opt::<i32>(),
            conversions.as_list_opt::<i32>(),
        ) else {
            return exec_err!("{NAME}: sessions and conversions must be lists");
        };
        let mut out = Records::default();
        let mut offsets = vec![0i32];
        for row in 0..rows {
            user(sessions, conversions, row, &options, &mut out)?;
            offsets.push(out.len as i32);
        }
        let list = ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(RECORD.clone()), false)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(out.finish()?),
            None,
        )?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

fn options(
    models: &ColumnarValue,
    lookback: &ColumnarValue,
    steps: &ColumnarValue,
    transform: &ColumnarValue,
    half_life: &ColumnarValue,
) -> Result<Options> {
    let text = |v: &ColumnarValue| match v {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(s))) => Ok(s.clone()),
        other => exec_err!("{NAME}: expected a text literal, got {other:?}"),
    };
    let int = |v: &ColumnarValue| match v {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) => Ok(*n),
        other => exec_err!("{NAME}: expected an integer literal, got {other:?}"),
    };
    let models = text(models)?
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| Model::parse(m).ok_or_else(|| format!("unknown model {m}")))
        .collect::<std::result::Result<Vec<_>, _>>();
    let Ok(models) = models else {
        return exec_err!("{NAME}: {}", models.err().unwrap_or_default());
    };
    let transform = match text(transform)?.as_str() {
        "exposure" => PathTransform::Exposure,
        "first" => PathTransform::First,
        "none" => PathTransform::None,
        other => return exec_err!("{NAME}: unknown path transform {other}"),
    };
    let half_life = match half_life {
        ColumnarValue::Scalar(ScalarValue::Float64(Some(h))) => *h,
        other => return exec_err!("{NAME}: expected a float literal, got {other:?}"),
    };
    Ok(Options {
        models,
        lookback_micros: int(lookback)?,
        steps: usize::try_from(int(steps)?).unwrap_or(0),
        transform,
        half_life_micros: half_life,
    })
}

/// The records of the user at `row`.
fn user(
    sessions: &ListArray,
    conversions: &ListArray,
    row: usize,
    options: &Options,
    out: &mut Records,
) -> Result<()> {
    if sessions.is_null(row) {
        return Ok(());
    }
    let list = sessions.value(row);
    let Some(list) = list.as_struct_opt() else {
        return exec_err!("{NAME}: sessions must be structs");
    };
    let times = field(list, "t")?;
    let times = times.as_primitive::<TimestampMicrosecondType>();
    let ids = field(list, "id")?;
    let ids = ids.as_string::<i32>();
    let session_index: HashMap<&str, usize> = (0..ids.len()).map(|i| (ids.value(i), i)).collect();
    let mut convs: Vec<(Conversion, i128)> = Vec::new();
    if !conversions.is_null(row) {
        let list = conversions.value(row);
        let Some(list) = list.as_struct_opt() else {
            return exec_err!("{NAME}: conversions must be structs");
        };
        let session = field(list, "session")?;
        let session = session.as_string::<i32>();
        let t = field(list, "t")?;
        let t = t.as_primitive::<TimestampMicrosecondType>();
        let v = field(list, "v")?;
        let v = v.as_primitive::<Decimal128Type>();
        for i in 0..list.len() {
            let Some(&s) = session_index.get(session.value(i)) else {
                return exec_err!("{NAME}: a conversion's session is not the user's");
            };
            convs.push((
                Conversion {
                    session: s,
                    time: t.value(i),
                },
                v.value(i),
            ));
        }
    }
    let plain: Vec<Conversion> = convs.iter().map(|(c, _)| c.clone()).collect();
    for dim in DIMENSIONS {
        let keys = field(list, dim)?;
        let keys = keys.as_string::<i32>();
        let touch: Vec<Session> = (0..keys.len())
            .map(|i| Session {
                time: times.value(i),
                key: (!keys.is_null(i)).then(|| keys.value(i)),
            })
            .collect();
        for (conv, value) in &convs {
            let path = paths::conversion_path(&touch, conv, options);
            out.path(dim, &path, 1, 0, *value);
            // Linear always: its records name every key of a converting path, the rows the
            // outputs have whatever the models.
            let linear = (!options.models.contains(&Model::Linear)).then_some(&Model::Linear);
            for model in options.models.iter().chain(linear) {
                if *model == Model::Markov {
                    continue;
                }
                for (key, share) in
                    paths::shares(*model, &path, conv.time, options.half_life_micros)
                {
                    out.credit(dim, *model, key, share, share * *value as f64 / 1e6);
                }
            }
            if options.models.contains(&Model::Markov) && !path.keys.is_empty() {
                out.transitions(dim, &path.keys, true);
            }
        }
        if let Some(path) = paths::non_converting_path(&touch, &plain, options) {
            out.path(dim, &path, 0, 1, 0);
            if options.models.contains(&Model::Markov) {
                out.transitions(dim, &path.keys, false);
            }
        }
    }
    Ok(())
}

fn field(list: &StructArray, name: &str) -> Result<ArrayRef> {
    match list.column_by_name(name) {
        Some(c) => Ok(c.clone()),
        None => exec_err!("{NAME}: no field {name}"),
    }
}

/// The records being built, column by column.
#[derive(Default)]
struct Records {
    len: usize,
    kind: StringBuilder,
    dimension: StringBuilder,
    model: StringBuilder,
    key: StringBuilder,
    to: StringBuilder,
    share: Float64Builder,
    revenue: Float64Builder,
    value: Decimal128Builder,
    converted: Int64Builder,
    non: Int64Builder,
}

impl Records {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        kind: &str,
        dim: &str,
        model: Option<&str>,
        key: Option<&str>,
        to: Option<&str>,
        share: f64,
        revenue: f64,
        value: i128,
        converted: i64,
        non: i64,
    ) {
        self.len += 1;
        self.kind.append_value(kind);
        self.dimension.append_value(dim);
        self.model.append_option(model);
        self.key.append_option(key);
        self.to.append_option(to);
        self.share.append_value(share);
        self.revenue.append_value(revenue);
        self.value.append_value(value);
        self.converted.append_value(converted);
        self.non.append_value(non);
    }

    fn credit(&mut self, dim: &str, model: Model, key: Option<&str>, share: f64, revenue: f64) {
        let name = Some(model.name());
        self.push("credit", dim, name, key, None, share, revenue, 0, 0, 0);
    }

    fn path(&mut self, dim: &str, path: &Path, converted: i64, non: i64, value: i128) {
        let text = (!path.keys.is_empty()).then(|| path.keys.join(" > "));
        let key = text.as_deref();
        self.push(
            "path", dim, None, key, None, 0.0, 0.0, value, converted, non,
        );
    }

    fn transitions(&mut self, dim: &str, keys: &[&str], converted: bool) {
        let mut from = None;
        for key in keys {
            self.push("transition", dim, None, from, Some(key), 0.0, 0.0, 0, 0, 0);
            from = Some(*key);
        }
        let (end, c) = if converted {
            ("conversion", 1)
        } else {
            ("null", 0)
        };
        self.push(
            "transition",
            dim,
            Some(end),
            from,
            None,
            0.0,
            0.0,
            0,
            c,
            1 - c,
        );
    }

    fn finish(mut self) -> Result<StructArray> {
        let value = self
            .value
            .finish()
            .with_precision_and_scale(18, crate::input::values::MONEY_SCALE)?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.kind.finish()),
            Arc::new(self.dimension.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.to.finish()),
            Arc::new(self.share.finish()),
            Arc::new(self.revenue.finish()),
            Arc::new(value),
            Arc::new(self.converted.finish()),
            Arc::new(self.non.finish()),
        ];
        Ok(StructArray::try_new(RECORD.clone(), columns, None)?)
    }
}
