//! The model's tree ensemble walked natively: the ONNX-ML
//! `TreeEnsembleClassifier` node's attributes (the same ones tract-onnx reads)
//! compiled into one flat array of 16-byte nodes, so a request costs one
//! root-to-leaf walk per tree and no allocation.
//!
//! Why not tract's own evaluation: tract-onnx 0.23.9 finds a leaf's weights by
//! walking its whole leaf table up to it (`outer_iter().skip(n)`), so a call
//! costs O(trees × leaves) — about 4 ms for the committed 60-tree forest
//! (docs/anomaly.md, "Inference cost"). tract still parses and checks the
//! file and stays the reference: [`super::OnnxModel::from_bytes`] refuses a
//! forest whose walk disagrees with tract on its probes.
//!
//! Read exactly as tract reads it: every branch mode of the ensemble the same
//! (`BRANCH_LEQ`, `BRANCH_LT`, `BRANCH_GTE` or `BRANCH_GT`), leaf weights
//! summed per class in tree order, `base_values` added, `post_transform`
//! `NONE`; for two labels whose weights all name class 0 (skl2onnx's binary
//! layout) that sum is the second label's probability. Anything else is
//! refused with the reason.

use super::features::FEATURE_COUNT;
use tract_onnx::pb::{AttributeProto, ModelProto, NodeProto};

/// The op the walker reads, and the ONNX-ML domain it lives in.
pub(super) const TREE_OP: &str = "TreeEnsembleClassifier";
const ML_DOMAIN: &str = "ai.onnx.ml";
/// Marks a leaf in [`Node::feature`].
const LEAF: u16 = u16::MAX;
/// Largest forest accepted (nodes over all trees): far above any model the
/// training script writes (about 8,500), small enough to stay in cache.
const MAX_NODES: usize = 1 << 20;

/// One node: a branch (`feature`, `threshold`, children) or a leaf
/// (`feature == LEAF`, `threshold` = its weight for the attack class).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    feature: u16,
    /// A NaN feature value takes the `yes` branch.
    nan_yes: bool,
    threshold: f32,
    yes: u32,
    no: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
}

/// A compiled tree ensemble: the attack class's summed leaf weights.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Forest {
    mode: Mode,
    roots: Vec<u32>,
    nodes: Vec<Node>,
    base: f32,
}

fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints<'a>(node: &'a NodeProto, name: &str) -> Result<&'a [i64], String> {
    attr(node, name)
        .map(|a| a.ints.as_slice())
        .ok_or_else(|| format!("no `{name}`"))
}

fn floats<'a>(node: &'a NodeProto, name: &str) -> Result<&'a [f32], String> {
    attr(node, name)
        .map(|a| a.floats.as_slice())
        .ok_or_else(|| format!("no `{name}`"))
}

fn index(v: i64, below: usize, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&i| i < below)
        .ok_or_else(|| format!("{what} {v} out of range"))
}

/// The graph's only node when it is a tree ensemble; `None` when the model is
/// something else (tract runs it).
pub(super) fn tree_node(proto: &ModelProto) -> Option<&NodeProto> {
    let graph = proto.graph.as_ref()?;
    graph
        .node
        .iter()
        .find(|n| n.op_type == TREE_OP && n.domain == ML_DOMAIN)
}

impl Forest {
    /// Compiles the ensemble of a graph that is this one node and nothing
    /// else (so the node's output is the model's output).
    pub(super) fn from_proto(proto: &ModelProto) -> Result<Self, String> {
        let graph = proto.graph.as_ref().ok_or("no graph")?;
        let [node] = graph.node.as_slice() else {
            return Err(format!(
                "{} nodes beside the tree ensemble",
                graph.node.len().saturating_sub(1)
            ));
        };
        if node.op_type != TREE_OP || node.domain != ML_DOMAIN {
            return Err(format!("the graph's node is `{}`", node.op_type));
        }
        Self::from_node(node)
    }

    fn from_node(node: &NodeProto) -> Result<Self, String> {
        match attr(node, "post_transform").map(|a| a.s.as_slice()) {
            None | Some(b"NONE") => {}
            Some(other) => {
                return Err(format!(
                    "post_transform `{}`",
                    String::from_utf8_lossy(other)
                ))
            }
        }
        let labels = match (
            attr(node, "classlabels_int64s"),
            attr(node, "classlabels_strings"),
        ) {
            (Some(a), None) => a.ints.len(),
            (None, Some(a)) => a.strings.len(),
            _ => return Err("class labels".to_owned()),
        };
        if labels != 2 {
            return Err(format!("{labels} classes, not 2"));
        }

        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let features = ints(node, "nodes_featureids")?;
        let yes_ids = ints(node, "nodes_truenodeids")?;
        let no_ids = ints(node, "nodes_falsenodeids")?;
        let values = floats(node, "nodes_values")?;
        let modes = &attr(node, "nodes_modes").ok_or("no `nodes_modes`")?.strings;
        let n = tree_ids.len();
        if n == 0 || n > MAX_NODES {
            return Err(format!("{n} nodes"));
        }
        let lengths = [
            node_ids.len(),
            features.len(),
            yes_ids.len(),
            no_ids.len(),
            values.len(),
            modes.len(),
        ];
        if lengths.iter().any(|&l| l != n) {
            return Err("node attributes of different lengths".to_owned());
        }
        let nan_yes = match attr(node, "nodes_missing_value_tracks_true") {
            Some(a) if a.ints.len() == n => a.ints.as_slice(),
            Some(_) => return Err("nodes_missing_value_tracks_true length".to_owned()),
            None => &[],
        };

        // Trees are numbered 0..T; a node's id is its index within its tree.
        let trees = index(tree_ids.iter().copied().max().unwrap_or(0), n, "tree id")? + 1;
        let mut sizes = vec![0usize; trees];
        for &t in tree_ids {
            let t = index(t, trees, "tree id")?;
            sizes[t] += 1;
        }
        let mut roots = Vec::with_capacity(trees);
        let mut start = 0usize;
        for &size in &sizes {
            if size == 0 {
                return Err("a tree without nodes".to_owned());
            }
            roots.push(u32::try_from(start).map_err(|_| "too many nodes")?);
            start += size;
        }
        let mut mode = None;
        let empty = Node {
            feature: LEAF,
            nan_yes: false,
            threshold: f32::NAN,
            yes: u32::MAX,
            no: u32::MAX,
        };
        let mut nodes = vec![empty; n];
        let mut seen = vec![false; n];
        for (i, &t) in tree_ids.iter().enumerate() {
            let at = slot_of(t, node_ids[i], &sizes, &roots)?;
            if std::mem::replace(&mut seen[at], true) {
                return Err("a node id repeated".to_owned());
            }
            let this = match modes[i].as_slice() {
                b"LEAF" => Node {
                    threshold: 0.0,
                    ..empty
                },
                m => {
                    let m = match m {
                        b"BRANCH_LEQ" => Mode::Leq,
                        b"BRANCH_LT" => Mode::Lt,
                        b"BRANCH_GTE" => Mode::Gte,
                        b"BRANCH_GT" => Mode::Gt,
                        other => {
                            return Err(format!("node mode `{}`", String::from_utf8_lossy(other)))
                        }
                    };
                    if *mode.get_or_insert(m) != m {
                        return Err("branch modes differ between nodes".to_owned());
                    }
                    let child = |id: i64| -> Result<u32, String> {
                        let c = slot_of(t, id, &sizes, &roots)?;
                        if c <= at {
                            return Err("a child before its parent".to_owned());
                        }
                        u32::try_from(c).map_err(|_| "too many nodes".to_owned())
                    };
                    Node {
                        feature: u16::try_from(index(features[i], FEATURE_COUNT, "feature")?)
                            .map_err(|_| "feature index")?,
                        nan_yes: nan_yes.get(i).is_some_and(|&v| v != 0),
                        threshold: values[i],
                        yes: child(yes_ids[i])?,
                        no: child(no_ids[i])?,
                    }
                }
            };
            nodes[at] = this;
        }

        // Leaf weights: skl2onnx's binary layout names class 0 throughout and
        // means the second label; otherwise class 1 is the attack class.
        let class_ids = ints(node, "class_ids")?;
        let class_trees = ints(node, "class_treeids")?;
        let class_nodes = ints(node, "class_nodeids")?;
        let weights = floats(node, "class_weights")?;
        let m = class_ids.len();
        if m == 0 || [class_trees.len(), class_nodes.len(), weights.len()] != [m; 3] {
            return Err("leaf attributes of different lengths".to_owned());
        }
        let attack: usize = if class_ids.iter().all(|&c| c == 0) {
            0
        } else {
            1
        };
        // tract adds a leaf's weights in (tree, node id) order; the same order
        // gives the same f32 sums.
        let mut order: Vec<usize> = (0..m).collect();
        order.sort_by_key(|&j| (class_trees[j], class_nodes[j]));
        for j in order {
            let at = slot_of(class_trees[j], class_nodes[j], &sizes, &roots)?;
            let leaf = &mut nodes[at];
            if leaf.feature != LEAF {
                return Err("a weight on a branch".to_owned());
            }
            if index(class_ids[j], 2, "class id")? == attack {
                leaf.threshold += weights[j];
            }
        }
        let base = match attr(node, "base_values") {
            None => 0.0,
            Some(a) if a.floats.len() == 2 => a.floats[attack],
            Some(_) => return Err("base_values length".to_owned()),
        };
        Ok(Self {
            mode: mode.unwrap_or(Mode::Leq),
            roots,
            nodes,
            base,
        })
    }

    /// The attack class's score (the model's `probabilities[1]`).
    pub(super) fn eval(&self, x: &[f32; FEATURE_COUNT]) -> f32 {
        match self.mode {
            Mode::Leq => self.walk(x, |v, t| v <= t),
            Mode::Lt => self.walk(x, |v, t| v < t),
            Mode::Gte => self.walk(x, |v, t| v >= t),
            Mode::Gt => self.walk(x, |v, t| v > t),
        }
    }

    #[inline(always)]
    fn walk(&self, x: &[f32; FEATURE_COUNT], yes: impl Fn(f32, f32) -> bool) -> f32 {
        let mut sum = 0.0f32;
        for &root in &self.roots {
            let mut i = root as usize;
            // Children always come after their parent (checked when
            // compiled), so every walk ends at a leaf.
            while let Some(node) = self.nodes.get(i) {
                let Some(&v) = x.get(usize::from(node.feature)) else {
                    sum += node.threshold;
                    break;
                };
                let go_yes = if v.is_nan() {
                    node.nan_yes
                } else {
                    yes(v, node.threshold)
                };
                i = if go_yes { node.yes } else { node.no } as usize;
            }
        }
        sum + self.base
    }
}

#[cfg(test)]
impl Forest {
    /// Adds `by` to every answer: a walk that no longer matches tract.
    pub(super) fn nudge(&mut self, by: f32) {
        self.base += by;
    }
}

fn slot_of(tree: i64, id: i64, sizes: &[usize], roots: &[u32]) -> Result<usize, String> {
    let t = index(tree, sizes.len(), "tree id")?;
    let id = index(id, sizes[t], "node id")?;
    Ok(roots[t] as usize + id)
}
