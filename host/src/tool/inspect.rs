//! `suit-tool inspect`: what an envelope says, as text or JSON. Nothing here is verified —
//! the output says so.

use serde_json::{json, Map, Value};
use suit_shared::auth::alg_name;
use suit_shared::command::{command_name, Command, CommandSequence, IndexSelection};
use suit_shared::digest::SuitDigest;
use suit_shared::encryption::EncryptionInfo;
use suit_shared::envelope::{Envelope, Framing};
use suit_shared::manifest::{Dependencies, Manifest, Severable, TextMap};
use suit_shared::params::{Parameter, VendorId};
use suit_shared::Result;

use super::hex;

fn digest_json(d: &SuitDigest<'_>) -> Value {
    json!({ "algorithm": d.alg.name(), "bytes": hex(d.bytes) })
}

fn parameter_json(p: &Parameter<'_>) -> (String, Value) {
    let name = Parameter::name_of(p.key()).to_string();
    let value = match p {
        Parameter::VendorId(VendorId::Uuid(u)) | Parameter::ClassId(u) | Parameter::DeviceId(u) => {
            json!(u.to_string())
        }
        Parameter::VendorId(VendorId::Pen(pen)) => json!({ "pen": hex(pen) }),
        Parameter::ImageDigest(d) => digest_json(d),
        Parameter::UseBefore(v)
        | Parameter::ComponentSlot(v)
        | Parameter::ImageSize(v)
        | Parameter::SourceComponent(v)
        | Parameter::MinimumBattery(v) => json!(v),
        Parameter::StrictOrder(b) | Parameter::SoftFailure(b) => json!(b),
        Parameter::EncryptionInfo(b) => match EncryptionInfo::decode(b) {
            Ok(info) => json!({ "algorithms": super::crypt::describe(&info), "cose": hex(b) }),
            Err(e) => json!({ "undecodable": e.to_string(), "cose": hex(b) }),
        },
        Parameter::Content(b)
        | Parameter::InvokeArgs(b)
        | Parameter::FetchArgs(b)
        | Parameter::WaitInfo(b)
        | Parameter::ComponentMetadata(b) => json!(hex(b)),
        Parameter::Uri(u) => json!(u),
        Parameter::VerityRoot(root) => json!({
            "algorithm": "sha-256",
            "root": hex(&root[..]),
            "tree": "dm-verity format 1, 4096-byte blocks, salt = image digest (docs/streaming.md)",
        }),
        Parameter::UpdatePriority(v) => json!(v),
        Parameter::Version(v) => {
            json!({ "comparison": format!("{:?}", v.comparison), "version": v.version })
        }
        Parameter::Custom(k) => return (format!("custom({k})"), Value::Null),
    };
    (name, value)
}

fn parameters_json(params: &[Parameter<'_>]) -> Value {
    Value::Object(params.iter().map(parameter_json).collect::<Map<_, _>>())
}

fn command_json(c: &Command<'_>) -> Value {
    match c {
        Command::Condition(cond, rp) => {
            json!({ "command": command_name(cond.key()), "reporting-policy": rp.0 })
        }
        Command::Directive(dir, rp) => {
            json!({ "command": command_name(dir.key()), "reporting-policy": rp.0 })
        }
        Command::SetComponentIndex(sel) => json!({
            "command": "directive-set-component-index",
            "index": match sel {
                IndexSelection::One(i) => json!(i),
                IndexSelection::All => json!(true),
                IndexSelection::List(l) => json!(l),
            }
        }),
        Command::OverrideParameters(p) => {
            json!({ "command": "directive-override-parameters", "parameters": parameters_json(p) })
        }
        Command::SetParameters(p) => {
            json!({ "command": "directive-set-parameters", "parameters": parameters_json(p) })
        }
        Command::OverrideMultiple(entries) => json!({
            "command": "directive-override-multiple",
            "components": entries.iter().map(|(i, p)| json!({ "index": i, "parameters": parameters_json(p) })).collect::<Vec<_>>()
        }),
        Command::CopyParams(entries) => json!({
            "command": "directive-copy-params",
            "components": entries.iter().map(|(i, k)| json!({ "from": i, "keys": k })).collect::<Vec<_>>()
        }),
        Command::TryEach {
            branches,
            empty_fallback,
        } => json!({
            "command": "directive-try-each",
            "branches": branches.iter().map(sequence_json).collect::<Vec<_>>(),
            "empty-fallback": empty_fallback,
        }),
        Command::RunSequence(seq) => {
            json!({ "command": "directive-run-sequence", "sequence": sequence_json(seq) })
        }
    }
}

fn sequence_json(seq: &CommandSequence<'_>) -> Value {
    Value::Array(seq.commands.iter().map(command_json).collect())
}

fn severable_json<T>(s: &Severable<'_, T>, f: impl Fn(&T) -> Value) -> Value {
    match s {
        Severable::Absent => Value::Null,
        Severable::Present { value, severed } => json!({ "severed": severed, "value": f(value) }),
        Severable::Severed(d) => {
            json!({ "severed": true, "absent-from-envelope": true, "digest": digest_json(d) })
        }
    }
}

fn text_json(t: &TextMap<'_>) -> Value {
    let mut langs = Map::new();
    for (lang, text) in &t.languages {
        let components: Vec<Value> = text
            .components
            .iter()
            .map(|(id, fields)| json!({ "component": id.to_string(), "text": fields }))
            .collect();
        langs.insert(
            lang.to_string(),
            json!({ "manifest": text.manifest, "components": components }),
        );
    }
    Value::Object(langs)
}

/// Dependencies (trust-domains), shown though processing refuses them; null when none.
fn dependencies_json(deps: &Dependencies<'_>) -> Value {
    if deps.components.is_empty() && deps.resolution == Severable::Absent {
        return Value::Null;
    }
    let components: Vec<Value> = deps
        .components
        .iter()
        .map(|(index, metadata)| json!({ "index": index, "metadata": hex(metadata) }))
        .collect();
    json!({
        "components": components,
        "dependency-resolution": severable_json(&deps.resolution, sequence_json),
        "processing": "refused: dependencies not supported",
    })
}

/// The envelope and its manifest as JSON.
pub fn to_json(bytes: &[u8]) -> Result<Value> {
    let env = Envelope::decode(bytes)?;
    let (m, deps) = Manifest::decode_for_inspection(&env)?;
    let auth = match &env.auth {
        None => Value::Null,
        Some(a) => {
            let blocks: Vec<Value> = a
                .summaries()?
                .iter()
                .map(|b| {
                    json!({
                        "type": b.kind.name(),
                        "algorithms": b.algs.iter().map(|a| a.map(alg_name)).collect::<Vec<_>>(),
                        "key-ids": b.kids.iter().map(|k| hex(k)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({ "digest": digest_json(&a.digest), "blocks": blocks })
        }
    };
    let opt_seq =
        |s: &Option<CommandSequence<'_>>| s.as_ref().map(sequence_json).unwrap_or(Value::Null);
    Ok(json!({
        "verified": false,
        "framing": match env.framing {
            Framing::TaggedEnvelope => "tagged envelope (107)",
            Framing::UntaggedEnvelope => "untagged envelope",
            Framing::BareManifest => "bare manifest (1070)",
        },
        "size": bytes.len(),
        "authentication": auth,
        "manifest-version": 1,
        "sequence-number": m.sequence_number,
        "components": m.components.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "reference-uri": m.reference_uri,
        "manifest-component-id": m.manifest_component_id.as_ref().map(|c| c.to_string()),
        "shared-sequence": opt_seq(&m.shared_sequence),
        "payload-fetch": severable_json(&m.payload_fetch, sequence_json),
        "candidate-verification": severable_json(&m.candidate_verification, sequence_json),
        "install": severable_json(&m.install, sequence_json),
        "validate": opt_seq(&m.validate),
        "load": opt_seq(&m.load),
        "invoke": opt_seq(&m.invoke),
        "uninstall": opt_seq(&m.uninstall),
        "text": severable_json(&m.text, text_json),
        "dependencies": dependencies_json(&deps),
        "integrated-payloads": env.integrated.iter().map(|p| json!({ "key": p.key, "size": p.data.len() })).collect::<Vec<_>>(),
    }))
}

/// The envelope and its manifest as readable text (rendered from the JSON form).
pub fn to_text(bytes: &[u8]) -> Result<String> {
    let v = to_json(bytes)?;
    let mut out = String::new();
    out.push_str("NOT VERIFIED — use `suit-tool verify` to check authenticity\n");
    line(&mut out, 0, "framing", &v["framing"]);
    line(&mut out, 0, "size", &v["size"]);
    line(&mut out, 0, "sequence number", &v["sequence-number"]);
    if let Some(auth) = v["authentication"].as_object() {
        out.push_str(&format!(
            "authentication: {} digest {}\n",
            auth["digest"]["algorithm"].as_str().unwrap_or("?"),
            auth["digest"]["bytes"].as_str().unwrap_or("?")
        ));
        for b in auth["blocks"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {} {} key-id {}\n",
                b["type"].as_str().unwrap_or("?"),
                b["algorithms"],
                b["key-ids"]
            ));
        }
    }
    out.push_str("components:\n");
    for (i, c) in v["components"].as_array().into_iter().flatten().enumerate() {
        out.push_str(&format!("  [{i}] {}\n", c.as_str().unwrap_or("?")));
    }
    for key in ["reference-uri", "manifest-component-id"] {
        if !v[key].is_null() {
            line(&mut out, 0, key, &v[key]);
        }
    }
    for key in [
        "shared-sequence",
        "payload-fetch",
        "candidate-verification",
        "install",
        "validate",
        "load",
        "invoke",
        "uninstall",
    ] {
        let s = &v[key];
        if s.is_null() {
            continue;
        }
        match s.get("value") {
            Some(seq) => {
                out.push_str(&format!(
                    "{key}{}:\n",
                    if s["severed"] == true {
                        " (severed)"
                    } else {
                        ""
                    }
                ));
                sequence_text(&mut out, 1, seq);
            }
            None if s.get("absent-from-envelope").is_some() => {
                out.push_str(&format!(
                    "{key}: severed, not in this envelope (digest {})\n",
                    s["digest"]["bytes"]
                ));
            }
            None => {
                out.push_str(&format!("{key}:\n"));
                sequence_text(&mut out, 1, s);
            }
        }
    }
    if let Some(deps) = v["dependencies"].as_object() {
        out.push_str("dependencies (processing refuses them: dependencies not supported):\n");
        for d in deps["components"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  component [{}] is a dependency manifest, metadata {}\n",
                d["index"],
                d["metadata"].as_str().unwrap_or("?")
            ));
        }
        let resolution = &deps["dependency-resolution"];
        match resolution.get("value") {
            Some(seq) => {
                out.push_str("dependency-resolution:\n");
                sequence_text(&mut out, 1, seq);
            }
            None if resolution.get("absent-from-envelope").is_some() => {
                out.push_str("dependency-resolution: severed, not in this envelope\n")
            }
            None => {}
        }
    }
    if let Some(text) = v["text"].get("value") {
        out.push_str(&format!(
            "text: {}\n",
            serde_json::to_string_pretty(text).unwrap_or_default()
        ));
    }
    for p in v["integrated-payloads"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "integrated payload {} ({} bytes)\n",
            p["key"], p["size"]
        ));
    }
    Ok(out)
}

fn line(out: &mut String, depth: usize, key: &str, value: &Value) {
    let shown = value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    out.push_str(&format!("{}{key}: {shown}\n", "  ".repeat(depth)));
}

fn sequence_text(out: &mut String, depth: usize, seq: &Value) {
    for c in seq.as_array().into_iter().flatten() {
        let name = c["command"].as_str().unwrap_or("?");
        let pad = "  ".repeat(depth);
        match name {
            "directive-try-each" => {
                out.push_str(&format!("{pad}{name}\n"));
                for (i, b) in c["branches"].as_array().into_iter().flatten().enumerate() {
                    out.push_str(&format!("{pad}  alternative {}:\n", i + 1));
                    sequence_text(out, depth + 2, b);
                }
                if c["empty-fallback"] == true {
                    out.push_str(&format!("{pad}  (nil: succeed if none applies)\n"));
                }
            }
            "directive-run-sequence" => {
                out.push_str(&format!("{pad}{name}\n"));
                sequence_text(out, depth + 1, &c["sequence"]);
            }
            _ => {
                let mut args = c.as_object().cloned().unwrap_or_default();
                args.remove("command");
                out.push_str(&format!("{pad}{name} {}\n", Value::Object(args)));
            }
        }
    }
}
