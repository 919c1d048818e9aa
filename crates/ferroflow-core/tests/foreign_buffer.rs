//! Tensors over memory owned elsewhere (`ForeignBuffer`, what the Python package uses for
//! NumPy arrays): read in place, never written, kept alive by their owner.

use ferroflow_core::storage::ForeignBuffer;
use ferroflow_core::{DType, Tensor, Variable};
use std::sync::Arc;

fn borrowed(data: Arc<Vec<f32>>, shape: &[usize]) -> Tensor {
    let ptr = data.as_ptr() as *const u8;
    let len = data.len();
    // SAFETY: `data` is the owner: its elements stay alive and unchanged while it lives.
    let buf = unsafe { ForeignBuffer::new(DType::F32, ptr, len, data) }.unwrap();
    Tensor::from_foreign(buf, shape).unwrap()
}

#[test]
fn ops_read_a_foreign_buffer_in_place_and_never_write_it() {
    let data = Arc::new(vec![1.0f32, 2.0, 3.0, 4.0]);
    let t = borrowed(data.clone(), &[2, 2]);
    assert_eq!(t.data::<f32>().unwrap().as_ptr(), data.as_ptr());
    assert_eq!(
        t.add(&t).unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 4.0, 6.0, 8.0]
    );
    assert_eq!(t.to_le_bytes().len(), 16);
    // An op that could reuse its input's buffer for the output copies a foreign one.
    assert!(borrowed(data.clone(), &[4]).try_into_vec::<f32>().is_err());
    let v = Variable::new(borrowed(data.clone(), &[4]));
    v.assign_add(&Tensor::from_vec(vec![1.0f32; 4], &[4]).unwrap())
        .unwrap();
    assert_eq!(*data, vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(v.value().to_vec::<f32>().unwrap(), vec![2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn foreign_buffers_refuse_misalignment_strings_and_wrong_sizes() {
    let data = Arc::new(vec![0u8; 16]);
    let odd = unsafe { data.as_ptr().add(1) };
    let e = unsafe { ForeignBuffer::new(DType::F32, odd, 2, data.clone()) }.unwrap_err();
    assert!(e.to_string().contains("not aligned"), "{e}");
    assert!(unsafe { ForeignBuffer::new(DType::String, data.as_ptr(), 1, data.clone()) }.is_err());
    let buf = unsafe { ForeignBuffer::new(DType::U8, data.as_ptr(), 16, data.clone()) }.unwrap();
    assert!(Tensor::from_foreign(buf, &[3, 5]).is_err());
}

#[test]
fn the_owner_lives_as_long_as_the_tensors() {
    let data = Arc::new(vec![5.0f32; 3]);
    let t = borrowed(data.clone(), &[3]);
    let view = t.reshape(&[3, 1]).unwrap();
    drop(t);
    assert_eq!(Arc::strong_count(&data), 2);
    drop(view);
    assert_eq!(Arc::strong_count(&data), 1);
}
