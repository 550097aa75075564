"""Adam over a whole network in one step: Chainer's numbers, a handful of array calls.

Chainer's Adam steps each parameter on its own, through an update rule's hooks, device scopes and
state checks, and on the CPU makes ten temporaries the size of each weight. Here a network's
weights and Adam's two moments are views into one contiguous array each, so a step gathers the
gradients into one array and updates all the weights at once, in place (docs/performance.md has
the times).
"""

import chainer
import numpy as np
from chainer.optimizers.adam import AdamRule


class FlatAdamRule(AdamRule):
    """AdamRule whose CPU step makes Chainer's float32 operations, in Chainer's order, in place.

    The same numbers bit for bit, without the temporaries. Options that the in-place step does not
    cover (weight decay, AMSGrad, AdaBound, float16) take Chainer's own code, as on a GPU.
    """

    def update_core_cpu(self, param):
        hp = self.hyperparam
        if hp.weight_decay_rate or hp.amsgrad or hp.adabound or param.dtype != np.float32:
            return super().update_core_cpu(param)
        self._check_eps(np.float32)
        weights, grad, m, v = param.array, param.grad, self.state["m"], self.state["v"]
        work = self.state.get("work")
        if work is None:  # kept for the next step
            work = self.state["work"] = np.empty_like(weights)
        # m += (1 - beta1) * (grad - m)
        np.subtract(grad, m, out=work)
        if hp.beta1:
            np.multiply(work, 1.0 - hp.beta1, out=work)
        m += work
        # v += (1 - beta2) * (grad * grad - v)
        np.multiply(grad, grad, out=work)
        np.subtract(work, v, out=work)
        np.multiply(work, 1.0 - hp.beta2, out=work)
        v += work
        # weights -= eta * (alpha_t / (sqrt(v) + eps) * m)
        np.sqrt(v, out=work)
        np.add(work, hp.eps, out=work)
        np.divide(self.alpha_t, work, out=work)
        np.multiply(work, m, out=work)
        if hp.eta != 1:
            np.multiply(work, hp.eta, out=work)
        weights -= work


class FlatAdam(chainer.optimizers.Adam):
    """Chainer's Adam (`optimizer.update` as Chainer's: it clears the gradients before computing
    them), stepping all of the target's parameters at once.

    The parameters' arrays and their update rules' moments become views into one array each (the
    layout is made again whenever something replaced them: a snapshot loaded into a fresh
    optimizer, `to_device`); snapshots hold them per parameter, as Chainer's Adam writes them. One
    FlatAdamRule steps the whole array: on a GPU Chainer's own kernel, once instead of once a
    parameter. Where a parameter has its own hyperparameters, hooks or step count, every
    parameter steps alone, as in Chainer.
    """

    def setup(self, link: chainer.Link):
        super().setup(link)
        self._flat = None
        return self

    def update(self, lossfun=None, *args, **kwds) -> None:
        """As chainer.GradientMethod.update, with one step for all parameters."""
        if lossfun is not None:
            loss = lossfun(*args, **kwds)
            self.target.cleargrads()
            loss.backward(loss_scale=self._loss_scale)
            del loss
        self.reallocate_cleared_grads()
        self.check_nan_in_grads()
        self.call_hooks("pre")
        self.t += 1
        if self.is_safe_to_update():
            params = list(self.target.params())
            if self._steps_together(params):
                self._step_all(params)
            else:
                for param in params:
                    param.update()
        self.reallocate_cleared_grads()
        self.call_hooks("post")
        self.update_loss_scale()

    def _steps_together(self, params: list) -> bool:
        """Whether every parameter would take Chainer's plain Adam step, from the same step count,
        with the same dtype, on the same device."""
        first = params[0]
        for param in params:
            rule = param.update_rule
            if (
                param.array is None
                or not rule.enabled
                or rule.t != first.update_rule.t
                or rule.hyperparam.get_dict() != self.hyperparam.get_dict()
                or rule._hookable._pre_update_hooks
                or rule._hookable._post_update_hooks
                or rule._use_fp32_update
                or param._loss_scale is not None
                or param.dtype != first.dtype
                or param.device != first.device
            ):
                return False
        return True

    def _step_all(self, params: list) -> None:
        flat = self._flat
        if flat is None or not flat.holds(params):
            flat = self._flat = FlatParameters(params, self.hyperparam)
        flat.gather_grads(params)
        for param in params:
            param.update_rule.t += 1
        flat.rule.t = params[0].update_rule.t
        with chainer.using_device(flat.param.device):
            flat.rule.update_core(flat.param)


class FlatParameters:
    """One array for all of `params`' weights, one for their gradients, one for each of Adam's
    moments; each parameter's weights and moments are views into them."""

    MOMENTS = ("m", "v")

    def __init__(self, params: list, hyperparam):
        device = params[0].device
        xp = device.xp
        total = sum(param.size for param in params)
        with chainer.using_device(device):
            weights = xp.empty(total, params[0].dtype)
            moments = {name: xp.zeros(total, params[0].dtype) for name in self.MOMENTS}
            self.grads = xp.empty_like(weights)
        self.views = []
        start = 0
        for param in params:
            end = start + param.size
            view = weights[start:end].reshape(param.shape)
            view[...] = param.array
            param.array = view
            state = param.update_rule.state
            if state is None:  # no step yet: Chainer would start the moments at zero
                state = param.update_rule._state = {}
            for name in self.MOMENTS:
                moment = moments[name][start:end].reshape(param.shape)
                if name in state:
                    moment[...] = device.send(state[name])
                state[name] = moment
            self.views.append((view, state["m"], state["v"]))
            start = end
        self.param = chainer.Parameter(weights)
        self.rule = FlatAdamRule(hyperparam)
        self.rule._state = moments

    def holds(self, params: list) -> bool:
        """Whether `params` still are the views (nothing replaced an array or a moment)."""
        if len(params) != len(self.views):
            return False
        for param, (view, m, v) in zip(params, self.views, strict=True):
            state = param.update_rule.state
            if param.array is not view or state is None or state.get("m") is not m or state.get("v") is not v:
                return False
        return True

    def gather_grads(self, params: list) -> None:
        xp = self.param.device.xp
        xp.concatenate([param.grad.ravel() for param in params], out=self.grads)
        self.param.grad = self.grads
