"""Adam over a whole network in one step: Chainer's numbers, a handful of array calls.

Chainer's Adam steps each parameter on its own, through an update rule's hooks, device scopes and
state checks, and on the CPU makes ten temporaries the size of each weight. Here a network's
weights and Adam's two moments are views into one contiguous array each. On the CPU a step updates
them in place, a parameter at a time, reading each gradient where the backward pass left it;
elsewhere (a GPU, options the in-place step does not cover) the gradients are gathered into one
array and Chainer's own step runs once over all the weights (docs/performance.md has the times).
"""

import chainer
import numpy as np
from chainer.optimizers.adam import AdamRule


class FlatAdamRule(AdamRule):
    """AdamRule that can step views of the weights and moments in place on the CPU."""

    def steps_in_place(self, dtype) -> bool:
        """Whether `step_in_place` covers these options and dtype (float32 without weight decay,
        AMSGrad or AdaBound); the rest take Chainer's own step."""
        hp = self.hyperparam
        return dtype == np.float32 and not (hp.weight_decay_rate or hp.amsgrad or hp.adabound)

    def step_in_place(self, operands, work: np.ndarray) -> None:
        """Chainer's float32 Adam operations, in Chainer's order, the same numbers bit for bit, on
        each (gradient, weights, m, v) of `operands` (flat arrays) in place, with `work` as scratch."""
        hp = self.hyperparam
        self._check_eps(np.float32)
        beta1_rest, beta2_rest, eps, alpha, eta = 1.0 - hp.beta1, 1.0 - hp.beta2, hp.eps, self.alpha_t, hp.eta
        subtract, add, multiply, divide = np.subtract, np.add, np.multiply, np.divide
        for grad, weights, m, v in operands:
            scratch = work[: len(weights)]
            # m += (1 - beta1) * (grad - m)
            subtract(grad, m, scratch)
            if hp.beta1:
                multiply(scratch, beta1_rest, scratch)
            add(m, scratch, m)
            # v += (1 - beta2) * (grad * grad - v)
            multiply(grad, grad, scratch)
            subtract(scratch, v, scratch)
            multiply(scratch, beta2_rest, scratch)
            add(v, scratch, v)
            # weights += -eta * (alpha_t / (sqrt(v) + eps) * m)
            np.sqrt(v, scratch)
            add(scratch, eps, scratch)
            divide(alpha, scratch, scratch)
            multiply(scratch, m, scratch)
            if eta != 1:
                multiply(scratch, eta, scratch)
            subtract(weights, scratch, weights)


class FlatAdam(chainer.optimizers.Adam):
    """Chainer's Adam (`optimizer.update` as Chainer's: it clears the gradients before computing
    them), stepping all of the target's parameters at once.

    The parameters' arrays and their update rules' moments become views into one array each (the
    layout is made again whenever something replaced them: a snapshot loaded into a fresh
    optimizer, `to_device`); snapshots hold them per parameter, as Chainer's Adam writes them. One
    FlatAdamRule steps them all: on the CPU in place, a parameter at a time; on a GPU with Chainer's own
    kernel, once instead of once a parameter. Where a parameter has its own hyperparameters, hooks
    or step count, every parameter steps alone, as in Chainer.
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
        for param in params:
            param.update_rule.t += 1
        flat.rule.t = params[0].update_rule.t
        if flat.param.device.xp is np and flat.rule.steps_in_place(flat.param.dtype):
            flat.rule.step_in_place(flat.operands(params), flat.work)
            return
        flat.gather_grads(params)
        with chainer.using_device(flat.param.device):
            flat.rule.update_core(flat.param)


# Parameters with fewer elements lie together at the end of the flat arrays and step together: one
# set of array calls for biases and small weights instead of one a parameter.
SMALL = 8192


class FlatParameters:
    """One array for all of `params`' weights, one for their gradients, one for each of Adam's
    moments; each parameter's weights and moments are views into them (the large parameters first,
    in order, then the small ones, in order)."""

    def __init__(self, params: list, hyperparam):
        device = params[0].device
        xp = device.xp
        total = sum(param.size for param in params)
        names = ("m", "v", "vhat") if hyperparam.amsgrad else ("m", "v")
        with chainer.using_device(device):
            weights = xp.empty(total, params[0].dtype)
            moments = {name: xp.zeros(total, params[0].dtype) for name in names}
        self.grads = None  # made by the first gather_grads
        self.order = sorted(range(len(params)), key=lambda i: params[i].size < SMALL)  # the layout's
        starts, start = {}, 0
        for i in self.order:
            starts[i], start = start, start + params[i].size
        self.small = [i for i in self.order if params[i].size < SMALL]
        self.views = []
        for i, param in enumerate(params):
            start = starts[i]
            end = start + param.size
            view = weights[start:end].reshape(param.shape)
            view[...] = param.array
            param.array = view
            state = param.update_rule.state
            if state is None:  # no step yet: Chainer would start the moments at zero
                state = param.update_rule._state = {}
            for name in names:
                moment = moments[name][start:end].reshape(param.shape)
                if name in state:
                    moment[...] = device.send(state[name])
                state[name] = moment
            self.views.append((view, state["m"], state["v"]))
        self.param = chainer.Parameter(weights)
        self.rule = FlatAdamRule(hyperparam)
        self.rule._state = moments
        self.large = [(i, *(a.reshape(-1) for a in self.views[i])) for i in self.order if i not in self.small]
        small_start = starts[self.small[0]] if self.small else total
        self.small_views = (weights[small_start:], moments["m"][small_start:], moments["v"][small_start:])
        self.small_grads = self.work = None  # the in-place step's scratch, on the CPU
        if xp is np:
            self.small_grads = np.empty(total - small_start, weights.dtype)
            largest = max([len(self.small_grads), *(len(w) for _, w, _, _ in self.large)])
            self.work = np.empty(largest, weights.dtype)

    def holds(self, params: list) -> bool:
        """Whether `params` still are the views (nothing replaced an array or a moment)."""
        if len(params) != len(self.views):
            return False
        for param, (view, m, v) in zip(params, self.views, strict=True):
            state = param.update_rule.state
            if param.array is not view or state is None or state.get("m") is not m or state.get("v") is not v:
                return False
        return True

    def operands(self, params: list):
        """(gradient, weights, m, v) of each large parameter, flat, the gradients read where they
        are (cutting the parameters into cache-sized chunks made the step no faster), then of all
        the small ones together."""
        for i, weights, m, v in self.large:
            yield params[i].grad.reshape(-1), weights, m, v
        if self.small:
            np.concatenate([params[i].grad.ravel() for i in self.small], out=self.small_grads)
            yield (self.small_grads, *self.small_views)

    def gather_grads(self, params: list) -> None:
        xp = self.param.device.xp
        if self.grads is None:
            with chainer.using_device(self.param.device):
                self.grads = xp.empty_like(self.param.array)
        xp.concatenate([params[i].grad.ravel() for i in self.order], out=self.grads)
        self.param.grad = self.grads
