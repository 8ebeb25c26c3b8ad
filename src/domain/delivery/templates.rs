//! Subjects and bodies of the mails Herald writes itself, rendered with
//! minijinja from the files in `templates/email/` (compiled into the binary).
//!
//! Each notification type has `<lang>/<type>.subject.txt`, `.txt` and
//! `.html` in English, German, French and Spanish. HTML is autoescaped (the
//! `.html` suffix selects it); text and subject are not. A language without
//! its own file falls back to English. The document events share one
//! English skeleton that takes its words from `<lang>/document.strings.txt`
//! (every part is rendered with `lang` in its context).

use std::sync::LazyLock;

use anyhow::Context;
use minijinja::{AutoEscape, Environment, Value};

/// Every template file of folder `templates/<dir>/`, by its name there,
/// compiled into the binary.
macro_rules! template_files {
    ($dir:literal: $($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $dir, "/", $name)))),*]
    };
}
pub(crate) use template_files;

const FILES: &[(&str, &str)] = template_files!["email":
    "layout.html",
    "en/user.password_changed.subject.txt",
    "en/user.password_changed.txt",
    "en/user.password_changed.html",
    "de/user.password_changed.subject.txt",
    "de/user.password_changed.txt",
    "de/user.password_changed.html",
    "fr/user.password_changed.subject.txt",
    "fr/user.password_changed.txt",
    "fr/user.password_changed.html",
    "es/user.password_changed.subject.txt",
    "es/user.password_changed.txt",
    "es/user.password_changed.html",
    "en/identity.approval_requested.subject.txt",
    "en/identity.approval_requested.txt",
    "en/identity.approval_requested.html",
    "de/identity.approval_requested.subject.txt",
    "de/identity.approval_requested.txt",
    "de/identity.approval_requested.html",
    "fr/identity.approval_requested.subject.txt",
    "fr/identity.approval_requested.txt",
    "fr/identity.approval_requested.html",
    "es/identity.approval_requested.subject.txt",
    "es/identity.approval_requested.txt",
    "es/identity.approval_requested.html",
    "en/identity.approved.subject.txt",
    "en/identity.approved.txt",
    "en/identity.approved.html",
    "de/identity.approved.subject.txt",
    "de/identity.approved.txt",
    "de/identity.approved.html",
    "fr/identity.approved.subject.txt",
    "fr/identity.approved.txt",
    "fr/identity.approved.html",
    "es/identity.approved.subject.txt",
    "es/identity.approved.txt",
    "es/identity.approved.html",
    "en/document.subject.txt",
    "en/document.txt",
    "en/document.html",
    "en/document.strings.txt",
    "de/document.strings.txt",
    "fr/document.strings.txt",
    "es/document.strings.txt",
];

/// The languages with templates of their own.
pub const LANGUAGES: &[&str] = &["en", "de", "fr", "es"];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| environment(FILES));

/// An environment of `files`: HTML autoescaped (by the `.html` suffix),
/// undefined variables an error.
pub fn environment(files: &'static [(&'static str, &'static str)]) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| if name.ends_with(".html") { AutoEscape::Html } else { AutoEscape::None });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in files {
        // The files are part of the build and unit tests render every one;
        // a broken one is reported at render time, not here.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "invalid template");
        }
    }
    env
}

/// The template language for a user locale of contract §7 (`DE`, `Default`, …).
pub fn language(locale: &str) -> &'static str {
    let lower = locale.to_ascii_lowercase();
    LANGUAGES.iter().copied().find(|l| *l == lower).unwrap_or("en")
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn pick(kind: &str, lang: &str, part: &str) -> String {
    let own = format!("{lang}/{kind}.{part}");
    if ENV.get_template(&own).is_ok() { own } else { format!("en/{kind}.{part}") }
}

/// Renders notification type `kind` in `locale` with `ctx`.
pub fn render(kind: &str, locale: &str, ctx: Value) -> anyhow::Result<Rendered> {
    let lang = language(locale);
    let ctx = minijinja::context! { lang => lang, ..ctx };
    let part = |part: &str| -> anyhow::Result<String> {
        let name = pick(kind, lang, part);
        let template = ENV.get_template(&name).with_context(|| format!("template {name}"))?;
        template.render(&ctx).with_context(|| format!("render {name}"))
    };
    let subject = part("subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = part("txt")?;
    let ctx = minijinja::context! { subject => &subject, ..ctx };
    let name = pick(kind, lang, "html");
    let html = ENV.get_template(&name).and_then(|t| t.render(&ctx)).with_context(|| format!("render {name}"))?;
    Ok(Rendered { subject, text, html })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str) -> Value {
        minijinja::context! { name => name, email => "ada@example.com", org => "Acme", at => "2026-11-23 10:00 UTC" }
    }

    #[test]
    fn every_language_renders_and_html_is_escaped() {
        for lang in LANGUAGES {
            let r = render("user.password_changed", lang, ctx("<b>Ada</b>")).unwrap();
            assert!(r.subject.contains("Acme") && !r.subject.contains('\n'), "{lang}: {}", r.subject);
            assert!(r.text.contains("<b>Ada</b>"), "text is not escaped");
            assert!(r.html.contains("&lt;b&gt;Ada&lt;") && !r.html.contains("<b>Ada"), "{lang}: {}", r.html);
            assert!(r.html.contains(&format!("lang=\"{lang}\"")));
        }
    }

    #[test]
    fn locales_pick_their_language_and_others_fall_back_to_english() {
        let de = render("user.password_changed", "DE", ctx("Ada")).unwrap();
        assert!(de.subject.contains("Passwort"), "{}", de.subject);
        let ja = render("user.password_changed", "JA", ctx("Ada")).unwrap();
        let en = render("user.password_changed", "Default", ctx("Ada")).unwrap();
        assert_eq!(ja, en);
        assert!(en.subject.starts_with("Your Acme password"));
    }

    fn document_ctx(event: &str) -> Value {
        minijinja::context! {
            event => event, org => "Acme", name => "Luther <L>", title => "NDA & more", document_id => "d-1",
            signer_name => "Ada", signer_email => "ada@example.com", reason => None::<String>,
            url => "https://x.example/d/1", attached => Some(1), at => "2026-11-24 10:00 UTC",
        }
    }

    #[test]
    fn document_events_render_in_every_language() {
        for (event, _) in crate::domain::identities::DOCUMENT_EVENTS {
            for lang in LANGUAGES {
                let r = render("document", lang, document_ctx(event)).unwrap();
                assert!(
                    r.subject.ends_with(": NDA & more") && !r.subject.contains('\n'),
                    "{lang} {event}: {}",
                    r.subject
                );
                assert!(
                    r.text.contains("Luther <L>") && r.text.contains("https://x.example/d/1"),
                    "{lang}: {}",
                    r.text
                );
                assert!(r.html.contains("Luther &lt;L&gt;") && r.html.contains("NDA &amp; more"), "{lang}: {}", r.html);
                assert!(
                    r.text.contains("ada@example.com") && r.text.trim_end().ends_with("Acme."),
                    "{lang}: {}",
                    r.text
                );
            }
        }
        let de = render("document", "DE", document_ctx("signed")).unwrap();
        assert!(de.subject.starts_with("Dokument unterschrieben"), "{}", de.subject);
        assert!(de.text.starts_with("Hallo Luther"), "{}", de.text);
    }

    #[test]
    fn identity_mails_carry_the_link_in_every_language() {
        for kind in ["identity.approval_requested", "identity.approved"] {
            for lang in LANGUAGES {
                let link = "https://h.example/a&b/sender-identity/{herald:token}";
                let ctx = minijinja::context! { org => "Acme", name => "Luther", email => "l@example.com",
                link => link, expires => "2026-12-01 10:00 UTC" };
                let r = render(kind, lang, ctx).unwrap();
                assert!(r.subject.contains("Acme"), "{kind} {lang}: {}", r.subject);
                assert!(r.text.contains(link), "{kind} {lang}: {}", r.text);
                let escaped =
                    "href=\"https:&#x2f;&#x2f;h.example&#x2f;a&amp;b&#x2f;sender-identity&#x2f;{herald:token}\"";
                assert!(r.html.contains(escaped), "{kind} {lang}: {}", r.html);
                assert!(r.text.contains("2026-12-01 10:00 UTC"), "{kind} {lang}");
            }
        }
    }

    #[test]
    fn every_file_parses() {
        for (name, _) in FILES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }
}
