"""What the task estimators share: divergence guard, gradient clipping and the fitted check."""

from skorch.callbacks import GradientNormClipping
from sklearn.exceptions import NotFittedError

from ..callbacks import DivergenceGuard


class GuardedNetMixin:
    """skorch net mixin: a :class:`~latticeprune.callbacks.DivergenceGuard`, gradient-norm
    clipping at ``max_grad_norm`` (None: off), and ``_check_fitted`` keyed by ``_fitted_attribute``.
    """

    _fitted_attribute = None

    def _check_fitted(self):
        if not getattr(self, "initialized_", False) or not hasattr(self, self._fitted_attribute):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call "
                                 "'fit' with appropriate arguments before using this estimator.")

    @property
    def _default_callbacks(self):
        callbacks = super()._default_callbacks + [("divergence_guard", DivergenceGuard())]
        if self.max_grad_norm is not None:
            callbacks.append(("gradient_clipping",
                              GradientNormClipping(gradient_clip_value=self.max_grad_norm)))
        return callbacks
