//! The module graph: data flows one way (spec → plan → hosts / target → runner → history →
//! checker → report, campaign above run, the command layer on top), so no top-level module
//! of `src/` may import one that imports it back. This test reads the sources, collects
//! every `crate::<module>` a top-level module names outside comments, and fails on any
//! cycle, naming the modules and the lines that close it.
//!
//! `FAULTLINE_GRAPH_SRC=<dir> cargo test --test it modules -- --nocapture` prints the graph
//! of another checkout's `src/` (how ARCHITECTURE.md's "before" was measured).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges `from → to` with one example `file:line` each.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn source_dir() -> PathBuf {
    match std::env::var_os("FAULTLINE_GRAPH_SRC") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules: `src/<m>.rs` and `src/<m>/`, without the crate roots.
fn top_level_modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods = BTreeMap::new();
    for e in std::fs::read_dir(src).expect("read src").flatten() {
        let p = e.path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let mut files = Vec::new();
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p.clone());
        } else {
            continue;
        }
        mods.entry(name).or_insert_with(Vec::new).extend(files);
    }
    mods
}

/// The code of a line, without a trailing `//` comment (doc comments and comments do not
/// make a dependency). Good enough for this crate: no `//` inside string literals that
/// also name `crate::`.
fn code_of(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Module names a line refers to as `crate::<name>` or inside `crate::{a, b::c}`.
fn referenced(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `faultline_crate::` or `xcrate::` are not the crate root.
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

fn graph(src: &Path) -> Graph {
    let mods = top_level_modules(src);
    let mut g: Graph = mods.keys().map(|m| (m.clone(), BTreeMap::new())).collect();
    for (m, files) in &mods {
        for f in files {
            let text = std::fs::read_to_string(f).expect("read source");
            for (i, line) in text.lines().enumerate() {
                for to in referenced(code_of(line)) {
                    if &to != m && mods.contains_key(&to) {
                        let at =
                            format!("{}:{}", f.strip_prefix(src).unwrap_or(f).display(), i + 1);
                        g.get_mut(m).expect("module").entry(to).or_insert(at);
                    }
                }
            }
        }
    }
    g
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(g: &Graph) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.g[v].keys() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("low");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("low");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = source_dir();
    let g = graph(&src);
    let edges: usize = g.values().map(|e| e.len()).sum();
    println!("{} modules, {edges} edges:", g.len());
    for (from, tos) in &g {
        let names: Vec<&str> = tos.keys().map(String::as_str).collect();
        println!("  {from} → {}", names.join(", "));
    }
    let found = cycles(&g);
    let mut why = Vec::new();
    for comp in &found {
        why.push(format!(
            "cycle among {}:",
            comp.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        for from in comp {
            for (to, at) in &g[from] {
                if comp.contains(to) {
                    why.push(format!("  {from} → {to} ({at})"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", why.join("\n"));
}

#[test]
fn the_scan_sees_grouped_and_plain_paths_but_not_comments() {
    assert_eq!(
        referenced("use crate::{history::Op, spec};"),
        vec!["history", "spec"]
    );
    assert_eq!(referenced("x = crate::log::line(a);"), vec!["log"]);
    assert!(referenced(code_of("// see crate::runner")).is_empty());
    assert!(referenced("my_crate::runner").is_empty());
    let mut g = Graph::new();
    g.entry("a".into())
        .or_default()
        .insert("b".into(), String::new());
    g.entry("b".into())
        .or_default()
        .insert("a".into(), String::new());
    g.entry("c".into())
        .or_default()
        .insert("a".into(), String::new());
    assert_eq!(
        cycles(&g),
        vec![BTreeSet::from(["a".to_string(), "b".to_string()])]
    );
}
