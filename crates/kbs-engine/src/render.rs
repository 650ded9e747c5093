//! The one template renderer: minijinja with the library's templates, strict about undefined
//! names (a typo in a template is an error, not an empty string) and keeping trailing newlines
//! (config files end with one).
//!
//! Task args are rendered string by string; a string that is exactly one `{{ expression }}` is
//! evaluated as an expression so lists and maps keep their shape.

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::playbook::Library;

pub struct Renderer {
    env: Environment<'static>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl From<minijinja::Error> for RenderError {
    fn from(e: minijinja::Error) -> Self {
        // The alternate form carries the template name, line and the failing expression.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        RenderError(text)
    }
}

impl Renderer {
    pub fn new(library: &Library) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        for (name, source) in library.templates() {
            // Checked here once; a template that fails to parse is reported when first used.
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                tracing::warn!(template = %name, "template does not parse: {e}");
            }
        }
        Renderer { env }
    }

    /// Render the library template `name`.
    pub fn template(&self, name: &str, ctx: &Value) -> Result<String, RenderError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| RenderError(format!("template `{name}`: {e}")))?;
        t.render(ctx)
            .map_err(|e| RenderError(format!("template `{name}`: {}", RenderError::from(e))))
    }

    /// Render a template given as text.
    pub fn string(&self, text: &str, ctx: &Value) -> Result<String, RenderError> {
        Ok(self.env.render_str(text, ctx)?)
    }

    /// Evaluate a `when:` expression.
    pub fn condition(&self, expr: &str, ctx: &Value) -> Result<bool, RenderError> {
        let e = self.env.compile_expression(expr)?;
        Ok(e.eval(ctx)?.is_true())
    }

    /// Render every string in `args`.
    pub fn args(&self, args: &serde_json::Value, ctx: &Value) -> Result<serde_json::Value, RenderError> {
        use serde_json::Value as J;
        Ok(match args {
            J::String(s) => {
                if let Some(expr) = whole_expression(s) {
                    let value = self.env.compile_expression(expr)?.eval(ctx)?;
                    serde_json::to_value(&value).map_err(|e| RenderError(e.to_string()))?
                } else if s.contains("{{") || s.contains("{%") {
                    J::String(self.string(s, ctx)?)
                } else {
                    J::String(s.clone())
                }
            }
            J::Array(items) => J::Array(
                items
                    .iter()
                    .map(|v| self.args(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            J::Object(map) => J::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.args(v, ctx)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// `"{{ expr }}"` with nothing around it → `expr`.
fn whole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn renderer() -> Renderer {
        let lib = Library::from_sources([], [("t.j2".to_string(), "x={{ x }}\n".to_string())]).unwrap();
        Renderer::new(&lib)
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let r = renderer();
        let ctx = context! { mods => vec!["overlay", "br_netfilter"], minor => 36 };
        let args = serde_json::json!({"names": "{{ mods }}", "url": "v1.{{ minor }}/deb", "n": 3});
        let out = r.args(&args, &ctx).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"names": ["overlay", "br_netfilter"], "url": "v1.36/deb", "n": 3})
        );
    }

    #[test]
    fn undefined_is_an_error_and_newline_is_kept() {
        let r = renderer();
        assert!(r.string("{{ nope }}", &context! {}).is_err());
        assert_eq!(r.template("t.j2", &context! { x => 1 }).unwrap(), "x=1\n");
        assert!(r
            .template("missing.j2", &context! {})
            .unwrap_err()
            .0
            .contains("missing.j2"));
    }

    #[test]
    fn conditions() {
        let r = renderer();
        let ctx = context! { host => context! { roles => vec!["worker"] } };
        assert!(r.condition("'worker' in host.roles", &ctx).unwrap());
        assert!(!r.condition("'control-plane' in host.roles", &ctx).unwrap());
    }
}
