//! `einsum` and `tensordot`, lowered to transposes, reductions and one batched matmul.

use crate::shape::{normalize_axis, numel};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Einstein summation over one or two operands (`tf.einsum`), e.g. `"bij,bjk->bik"`,
    /// `"ij->ji"`, `"ij->"`. Without `->`, the output lists the letters used once, sorted.
    /// A letter repeated within one operand (diagonals) and `...` are not supported.
    pub fn einsum(equation: &str, operands: &[Tensor]) -> Result<Tensor> {
        let op = "einsum";
        let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, out) = match eq.split_once("->") {
            Some((l, o)) => (l.to_string(), Some(o.to_string())),
            None => (eq.clone(), None),
        };
        let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
        if inputs.len() != operands.len() || !(1..=2).contains(&inputs.len()) {
            return Err(Error::invalid(
                op,
                format!(
                    "'{equation}' needs {} operands, got {} (1 or 2 supported)",
                    inputs.len(),
                    operands.len()
                ),
            ));
        }
        for (spec, t) in inputs.iter().zip(operands) {
            if spec.len() != t.rank() || spec.iter().any(|c| !c.is_ascii_alphabetic()) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "'{}' does not describe a tensor of shape {:?}",
                        spec.iter().collect::<String>(),
                        t.shape()
                    ),
                ));
            }
            if (1..spec.len()).any(|i| spec[..i].contains(&spec[i])) {
                return Err(Error::invalid(
                    op,
                    format!(
                        "repeated index in '{}' (diagonals) is not supported",
                        spec.iter().collect::<String>()
                    ),
                ));
            }
        }
        let out: Vec<char> = match out {
            Some(o) => o.chars().collect(),
            None => {
                let mut once: Vec<char> = inputs
                    .concat()
                    .into_iter()
                    .filter(|c| inputs.concat().iter().filter(|d| *d == c).count() == 1)
                    .collect();
                once.sort_unstable();
                once
            }
        };
        let size_of = |c: char| -> Result<usize> {
            let mut size = None;
            for (spec, t) in inputs.iter().zip(operands) {
                if let Some(p) = spec.iter().position(|&d| d == c) {
                    match size {
                        Some(s) if s != t.shape()[p] => {
                            return Err(Error::shapes(
                                op,
                                "an index has different sizes",
                                operands[0].shape(),
                                t.shape(),
                            ));
                        }
                        _ => size = Some(t.shape()[p]),
                    }
                }
            }
            size.ok_or_else(|| {
                Error::invalid(op, format!("output index '{c}' appears in no input"))
            })
        };
        for &c in &out {
            size_of(c)?;
        }
        // Sum away letters that appear only in one operand and not in the output.
        let reduce_private =
            |spec: &[char], t: &Tensor, other: &[char]| -> Result<(Vec<char>, Tensor)> {
                let axes: Vec<isize> = (0..spec.len())
                    .filter(|&i| !out.contains(&spec[i]) && !other.contains(&spec[i]))
                    .map(|i| i as isize)
                    .collect();
                if axes.is_empty() {
                    return Ok((spec.to_vec(), t.clone()));
                }
                let kept = spec
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !axes.contains(&(*i as isize)))
                    .map(|(_, &c)| c)
                    .collect();
                Ok((kept, t.sum(axes, false)?))
            };
        let permute_to = |spec: &[char], t: &Tensor, order: &[char]| -> Result<Tensor> {
            let perm: Vec<usize> = order
                .iter()
                .map(|c| spec.iter().position(|d| d == c).unwrap_or(0))
                .collect();
            t.transpose(&perm)
        };
        if inputs.len() == 1 {
            let (spec, t) = reduce_private(&inputs[0], &operands[0], &[])?;
            return Ok(permute_to(&spec, &t, &out)?.contiguous());
        }
        let (sa, a) = reduce_private(&inputs[0], &operands[0], &inputs[1])?;
        let (sb, b) = reduce_private(&inputs[1], &operands[1], &inputs[0])?;
        let batch: Vec<char> = sa
            .iter()
            .copied()
            .filter(|c| sb.contains(c) && out.contains(c))
            .collect();
        let contracted: Vec<char> = sa
            .iter()
            .copied()
            .filter(|c| sb.contains(c) && !out.contains(c))
            .collect();
        let free_a: Vec<char> = sa.iter().copied().filter(|c| !sb.contains(c)).collect();
        let free_b: Vec<char> = sb.iter().copied().filter(|c| !sa.contains(c)).collect();
        let dims = |cs: &[char]| {
            cs.iter()
                .map(|&c| size_of(c))
                .collect::<Result<Vec<usize>>>()
        };
        let (bd, kd, fad, fbd) = (
            dims(&batch)?,
            dims(&contracted)?,
            dims(&free_a)?,
            dims(&free_b)?,
        );
        let (nb, nk, nfa, nfb) = (numel(&bd), numel(&kd), numel(&fad), numel(&fbd));
        let a2 = permute_to(
            &sa,
            &a,
            &[batch.clone(), free_a.clone(), contracted.clone()].concat(),
        )?
        .reshape_to(&[nb, nfa, nk])?;
        let b2 = permute_to(
            &sb,
            &b,
            &[batch.clone(), contracted, free_b.clone()].concat(),
        )?
        .reshape_to(&[nb, nk, nfb])?;
        let c = a2.matmul(&b2)?;
        let spec: Vec<char> = [batch, free_a, free_b].concat();
        let c = c.reshape_to(&[bd, fad, fbd].concat())?;
        Ok(permute_to(&spec, &c, &out)?.contiguous())
    }

    /// Contracts `axes_a` of `self` with `axes_b` of `other` (`tf.tensordot`).
    ///
    /// # Shapes
    /// free axes of `self` followed by free axes of `other`.
    pub fn tensordot(&self, other: &Tensor, axes_a: &[isize], axes_b: &[isize]) -> Result<Tensor> {
        if axes_a.len() != axes_b.len() || self.rank() + other.rank() > 52 {
            return Err(Error::invalid(
                "tensordot",
                format!("axes {axes_a:?} and {axes_b:?} must pair up"),
            ));
        }
        let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        let sa: Vec<char> = letters[..self.rank()].to_vec();
        let mut sb: Vec<char> = letters[self.rank()..self.rank() + other.rank()].to_vec();
        for (&x, &y) in axes_a.iter().zip(axes_b) {
            let (i, j) = (
                normalize_axis("tensordot", x, self.rank())?,
                normalize_axis("tensordot", y, other.rank())?,
            );
            sb[j] = sa[i];
        }
        let out: String = sa
            .iter()
            .chain(&sb)
            .filter(|c| !(sa.contains(c) && sb.contains(c)))
            .collect();
        let eq = format!(
            "{},{}->{}",
            sa.iter().collect::<String>(),
            sb.iter().collect::<String>(),
            out
        );
        Tensor::einsum(&eq, &[self.clone(), other.clone()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: Vec<f32>, s: &[usize]) -> Tensor {
        Tensor::from_vec(v, s).unwrap()
    }

    #[test]
    fn common_equations() {
        let a = t((0..6).map(|v| v as f32).collect(), &[2, 3]);
        let b = t((0..12).map(|v| v as f32).collect(), &[3, 4]);
        let mm = Tensor::einsum("ij,jk->ik", &[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            mm.to_vec::<f32>().unwrap(),
            a.matmul(&b).unwrap().to_vec::<f32>().unwrap()
        );
        assert_eq!(
            Tensor::einsum("ij->ji", std::slice::from_ref(&a))
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        assert_eq!(
            Tensor::einsum("ij->", std::slice::from_ref(&a))
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![15.]
        );
        assert_eq!(
            Tensor::einsum("ij,ij->i", &[a.clone(), a.clone()])
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            vec![5., 50.]
        );
        let outer =
            Tensor::einsum("i,j", &[t(vec![1., 2.], &[2]), t(vec![3., 4., 5.], &[3])]).unwrap();
        assert_eq!(outer.shape(), &[2, 3]);
        let x = t((0..24).map(|v| v as f32).collect(), &[2, 3, 4]);
        let y = t((0..40).map(|v| v as f32).collect(), &[2, 4, 5]);
        let bmm = Tensor::einsum("bij,bjk->bki", &[x.clone(), y.clone()]).unwrap();
        let want = x
            .matmul(&y)
            .unwrap()
            .transpose(&[0, 2, 1])
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(bmm.to_vec::<f32>().unwrap(), want);
        let td = a.tensordot(&b, &[1], &[0]).unwrap();
        assert_eq!(td.to_vec::<f32>().unwrap(), mm.to_vec::<f32>().unwrap());
        assert!(Tensor::einsum("ii->i", &[t(vec![0.; 4], &[2, 2])]).is_err());
        assert!(Tensor::einsum("ij,jk->ik", &[a.clone(), a]).is_err());
    }
}
