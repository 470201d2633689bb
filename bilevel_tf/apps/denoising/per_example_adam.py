"""An Adam for per-example upper variables: every entry keeps its own moments and bias correction.

Keras' Adam treats an ``IndexedSlices`` gradient as a dense one with zeros elsewhere: the moments of
every entry decay each step and entries outside the batch keep moving along their old momentum. For
one importance value per training point (each seen once per epoch) that turns one gradient into ~10
steps of momentum. The original code avoided it by assigning the batch's importances to a batch-sized
variable before each step (so Adam slots were shared by batch POSITION, across different examples).

``PerExampleAdam`` is the clean version of "each example has its own Adam state": only the rows present
in the gradient are updated, with the bias correction of their own update count. The first update of an
entry is ``lr * sign(g)``, the scale the original's learning rate (lr_u = 3 on atanh logits) was tuned for.
Dense gradients update every entry, as plain Adam.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="bilevel_tf")
class PerExampleAdam(keras.optimizers.Optimizer):
    """Lazy Adam with per-entry step counts (see the module docstring)."""

    def __init__(
        self,
        learning_rate: float = 1e-3,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        name: str = "per_example_adam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v, self._count = self.add_optimizer_variables(var_list, ["m", "v", "count"])

    def _moments(self, m, v, c, g, lr):
        m_new = self.beta_1 * m + (1.0 - self.beta_1) * g
        v_new = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(g)
        c_new = c + 1.0
        m_hat = m_new / (1.0 - tf.pow(self.beta_1, c_new))
        v_hat = v_new / (1.0 - tf.pow(self.beta_2, c_new))
        return m_new, v_new, c_new, lr * m_hat / (tf.sqrt(v_hat) + self.epsilon)

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        m, v, c = self._m[i], self._v[i], self._count[i]
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        if isinstance(gradient, tf.IndexedSlices):
            idx = gradient.indices
            # Sum duplicate indices through a dense scatter (static shapes, unlike tf.unique, so XLA compiles
            # it); duplicates then compute and write identical rows.
            summed = tf.tensor_scatter_nd_add(
                tf.zeros(tf.shape(variable), dtype), idx[:, None], tf.cast(gradient.values, dtype)
            )
            m_new, v_new, c_new, step = self._moments(
                tf.gather(m.value, idx), tf.gather(v.value, idx), tf.gather(c.value, idx), tf.gather(summed, idx), lr
            )
            shape = tf.shape(variable, out_type=idx.dtype)
            for slot, value in ((m, m_new), (v, v_new), (c, c_new)):
                self.assign(slot, tf.IndexedSlices(value, idx, shape))
            # scatter_UPDATE of the new rows (scatter_sub would subtract a duplicated row's step twice)
            self.assign(variable, tf.IndexedSlices(tf.gather(variable, idx) - step, idx, shape))
        else:
            m_new, v_new, c_new, step = self._moments(m.value, v.value, c.value, tf.cast(gradient, dtype), lr)
            self.assign(m, m_new)
            self.assign(v, v_new)
            self.assign(c, c_new)
            self.assign_sub(variable, step)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return config
