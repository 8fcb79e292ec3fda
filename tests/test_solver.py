"""Tests of cs231n.solver and cs231n.captioning_solver: the classic loop, checkpoints, resume, stops.

The data dict is synthetic and built here (tiny vocabulary, random captions framed by <START>/<END>
and padded with <NULL>, random features). Expected values are computed here independently: the
iteration count and learning rates from the cs231n formulas, SGD trajectories by hand for models with
known gradients, the global gradient norm with its own loop, the val loss by one call of the model's
loss on all val captions at once.
"""
import math
import os
import re
import warnings

import numpy as np
import pytest

from cs231n.archive import load_archive
from cs231n.captioning_solver import CaptioningSolver
from cs231n.classifiers.rnn import CaptioningRNN
from cs231n.metrics import score_captions
from cs231n.solver import (Solver, TrainingDivergedError, checkpoint_path, clip_grad_norm,
                           load_checkpoint)

FRAMING = {'<NULL>', '<START>', '<END>'}
WORDS = ['<NULL>', '<START>', '<END>', '<UNK>', 'a', 'dog', 'cat', 'on', 'the', 'grass', 'sits',
         'runs', 'red', 'ball', 'man', 'with', 'café']
T = 8   # caption length
D = 6   # feature size


def make_data(num_train=40, num_train_images=10, num_val_images=6, captions_per_val_image=3, seed=0,
              words=WORDS):
    """A data dict in the layout of load_coco_data, with random but well-formed captions."""
    rng = np.random.default_rng(seed)
    V = len(words)

    def captions(n):
        caps = np.zeros((n, T), dtype=np.int32)  # <NULL> padding
        for i in range(n):
            length = int(rng.integers(1, T - 1))  # words between <START> and <END>
            caps[i, 0] = 1
            caps[i, 1:length + 1] = rng.integers(4, V, size=length)
            caps[i, length + 1] = 2
        return caps

    num_val = num_val_images * captions_per_val_image
    return {
        'train_captions': captions(num_train),
        'train_image_idxs': rng.integers(0, num_train_images, size=num_train).astype(np.int32),
        'train_features': rng.standard_normal((num_train_images, D)).astype(np.float32),
        'train_urls': np.array(['http://example.invalid/train/%d.jpg' % i for i in range(num_train_images)]),
        'val_captions': captions(num_val),
        'val_image_idxs': np.repeat(np.arange(num_val_images), captions_per_val_image).astype(np.int32),
        'val_features': rng.standard_normal((num_val_images, D)).astype(np.float32),
        'val_urls': np.array(['http://example.invalid/val/%d.jpg' % i for i in range(num_val_images)]),
        'idx_to_word': list(words),
        'word_to_idx': {w: i for i, w in enumerate(words)},
    }


def make_model(data, seed=0, hidden_dim=7, cell_type='rnn'):
    np.random.seed(seed)
    return CaptioningRNN(data['word_to_idx'], input_dim=D, wordvec_dim=5, hidden_dim=hidden_dim,
                         cell_type=cell_type)


def decode(row, idx_to_word):
    """The words of one caption row up to <END>, without framing tokens (written here, not imported)."""
    words = []
    for idx in row:
        word = idx_to_word[int(idx)]
        if word == '<END>':
            break
        if word not in FRAMING:
            words.append(word)
    return ' '.join(words)


def copy_params(params):
    return {k: v.copy() for k, v in params.items()}


def assert_params_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert np.array_equal(a[k], b[k]), k


class ConstantGradModel:
    """A model with one parameter 'w' whose gradient is a fixed array; the loss is sum(w)."""

    def __init__(self, grad, sample_fn=None):
        self.grad = np.asarray(grad, dtype=np.float64)
        self.params = {'w': np.zeros_like(self.grad)}
        self.sample_fn = sample_fn
        self.calls = 0

    def loss(self, features, captions):
        self.calls += 1
        return float(np.sum(self.params['w'])), {'w': self.grad.copy()}

    def sample(self, features, max_length=30):
        return self.sample_fn(self, features)


class FailingModel:
    """Wraps a model: at training iteration ``fail_at`` (1-based) ``action(self, features, captions)``
    replaces the loss. Use it with :class:`ArmedSolver`, which says when that iteration has come
    (the loss is also called by validation, so counting calls would not do)."""

    def __init__(self, model, fail_at, action):
        self.model = model
        self.params = model.params  # the same dict, so the solver's updates reach the real model
        self.fail_at = fail_at
        self.action = action
        self.armed = False

    def loss(self, features, captions):
        if self.armed:
            self.armed = False
            return self.action(self, features, captions)
        return self.model.loss(features, captions)

    def sample(self, features, max_length=30):
        return self.model.sample(features, max_length=max_length)

    def get_config(self):
        return self.model.get_config()


class ArmedSolver(CaptioningSolver):
    """Arms a FailingModel just before the minibatch of its iteration ``fail_at`` goes to the loss."""

    def _sample_batch(self):
        self.model.armed = self.iteration + 1 == self.model.fail_at
        return super()._sample_batch()


class Crash(Exception):
    """Stands for a crash (power cut, kill) in the middle of training."""


def quiet(**kwargs):
    options = {'verbose': False, 'num_val_images': 0}
    options.update(kwargs)
    return options


# ---------------------------------------------------------------------------------------- classic API

@pytest.mark.parametrize('num_train, batch_size, num_epochs', [(40, 10, 3), (40, 100, 2), (45, 10, 2)])
def test_iteration_count(num_train, batch_size, num_epochs):
    data = make_data(num_train=num_train)
    solver = CaptioningSolver(make_model(data), data, batch_size=batch_size, num_epochs=num_epochs,
                              **quiet())
    solver.train()
    expected = num_epochs * max(num_train // batch_size, 1)
    assert len(solver.loss_history) == expected
    assert all(isinstance(x, float) for x in solver.loss_history)
    assert solver.epoch == num_epochs


def test_classic_defaults_and_per_param_configs():
    data = make_data()
    model = make_model(data)
    config = {'learning_rate': 5e-3}
    solver = CaptioningSolver(model, data, update_rule='adam', optim_config=config)
    assert (solver.batch_size, solver.num_epochs, solver.print_every, solver.lr_decay) == (100, 10, 10, 1.0)
    assert solver.verbose is True
    assert solver.update_rule.__name__ == 'adam'
    assert sorted(solver.optim_configs) == sorted(model.params)
    ids = {id(c) for c in solver.optim_configs.values()}
    assert len(ids) == len(model.params) and id(config) not in ids
    assert all(c == config for c in solver.optim_configs.values())


def test_lr_decay_per_epoch_gives_the_hand_computed_sgd_trajectory():
    data = make_data(num_train=40)
    grad = np.array([1.0, -2.0, 0.5])
    model = ConstantGradModel(grad)
    lr, decay, epochs, per_epoch = 0.1, 0.5, 3, 4
    solver = CaptioningSolver(model, data, update_rule='sgd', optim_config={'learning_rate': lr},
                              lr_decay=decay, batch_size=10, num_epochs=epochs, **quiet())
    solver.train()
    # Epoch e uses learning rate lr * decay**e for its 4 iterations.
    expected_w = -sum(per_epoch * lr * decay ** e for e in range(epochs)) * grad
    np.testing.assert_allclose(model.params['w'], expected_w, rtol=1e-12)
    assert solver.optim_configs['w']['learning_rate'] == pytest.approx(lr * decay ** epochs, rel=1e-12)


CLASSIC_LINE = re.compile(r'^\(Iteration (\d+) / (\d+)\) loss: (\d+\.\d{6})$')  # '%f' of the loss


def test_classic_overfit_call_prints_the_classic_lines_and_nothing_else(capsys, tmp_path, monkeypatch):
    # The classic overfit cell's call, argument for argument (a smaller model, so that it runs fast), on
    # data with a val split: nothing but the iteration lines, no validation, no files.
    monkeypatch.chdir(tmp_path)
    data = make_data(num_train=50)
    np.random.seed(231)
    model = CaptioningRNN(cell_type='rnn', word_to_idx=data['word_to_idx'], input_dim=D, hidden_dim=16,
                          wordvec_dim=8)
    solver = CaptioningSolver(model, data, update_rule='adam', num_epochs=50, batch_size=25,
                              optim_config={'learning_rate': 5e-3}, lr_decay=0.95, verbose=True,
                              print_every=10)
    solver.train()
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 10, captured.out
    for k, line in enumerate(lines):
        m = CLASSIC_LINE.match(line)
        assert m, line
        assert int(m.group(1)) == 10 * k + 1 and int(m.group(2)) == 100
        assert m.group(3) == '%f' % solver.loss_history[10 * k]
    assert captured.err == ''
    assert solver.val_history == [] and solver.val_image_ids.size == 0 and solver.best_params == {}
    assert list(tmp_path.iterdir()) == []
    assert len(solver.loss_history) == 100 and all(type(x) is float for x in solver.loss_history)


def test_progress_eta_adds_seconds_per_iteration_and_eta(capsys):
    data = make_data(num_train=40)
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=2, print_every=3,
                              verbose=True, progress='eta')
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    pattern = re.compile(r'^\(Iteration (\d+) / 8\) loss: (\S+)  \((\S+) s/it, ETA (\d+:\d\d:\d\d)\)$')
    matches = [pattern.match(l) for l in lines]
    assert all(matches), lines
    assert [int(m.group(1)) for m in matches] == [1, 4, 7]  # t % print_every == 0, printed as t + 1
    for m in matches:
        assert m.group(2) == '%f' % solver.loss_history[int(m.group(1)) - 1]
        assert float(m.group(3)) >= 0


def test_validation_lines_and_checkpoints_when_switched_on(capsys, tmp_path):
    data = make_data(num_train=40)
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=2, print_every=100,
                              num_val_images=3, checkpoint_name=str(tmp_path / 'run'))
    solver.train()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '(Iteration 1 / 8) loss: %f' % solver.loss_history[0]
    epoch_lines = [l for l in lines if l.startswith('(Epoch ')]
    assert [l.split(')')[0] for l in epoch_lines] == ['(Epoch 1 / 2', '(Epoch 2 / 2']
    assert all('val loss' in l and 'CIDEr' in l for l in epoch_lines)
    assert len(solver.val_history) == 2 and solver.val_image_ids.size == 3
    assert (tmp_path / 'run.npz').is_file()


def test_verbose_false_prints_nothing(capsys):
    data = make_data()
    CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=1, verbose=False).train()
    assert capsys.readouterr().out == ''


def test_progress_bar_runs_and_validation_lines_use_it(capsys):
    pytest.importorskip('tqdm', reason='tqdm is not installed')
    data = make_data()
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=2, progress='bar',
                              num_val_images=3)
    solver.train()
    captured = capsys.readouterr()
    assert '(Iteration' not in captured.out
    assert captured.out.count('(Epoch ') == 2
    assert '8/8' in captured.err


def test_unknown_keyword_is_named():
    data = make_data()
    with pytest.raises(ValueError, match=r'Unrecognized arguments.*"bogus".*"other"'):
        CaptioningSolver(make_model(data), data, bogus=1, other=2)


def test_unknown_update_rule_is_named():
    data = make_data()
    with pytest.raises(ValueError, match='nesterov'):
        CaptioningSolver(make_model(data), data, update_rule='nesterov')
    with pytest.raises(ValueError, match='np'):  # not any attribute of cs231n.optim
        CaptioningSolver(make_model(data), data, update_rule='np')
    with pytest.raises(TypeError, match='update_rule'):
        CaptioningSolver(make_model(data), data, update_rule=len)


def test_empty_training_data():
    data = make_data()
    data['train_captions'] = data['train_captions'][:0]
    data['train_image_idxs'] = data['train_image_idxs'][:0]
    with pytest.raises(ValueError, match='empty'):
        CaptioningSolver(make_model(data), data)


@pytest.mark.parametrize('kwargs, error, match', [
    ({'batch_size': 0}, ValueError, 'batch_size'),
    ({'batch_size': 2.5}, TypeError, 'batch_size'),
    ({'num_epochs': -1}, ValueError, 'num_epochs'),
    ({'lr_decay': 0.0}, ValueError, 'lr_decay'),
    ({'grad_clip': -1.0}, ValueError, 'grad_clip'),
    ({'progress': 'fancy'}, ValueError, 'progress'),
    ({'checkpoint_every': 5}, ValueError, 'checkpoint_name'),
    ({'resume_from': 'a', 'init_from': 'b'}, ValueError, 'resume_from'),
    ({'num_val_images': -1}, ValueError, 'num_val_images'),
    ({'optim_config': [1e-3]}, TypeError, 'optim_config'),
])
def test_bad_options(kwargs, error, match):
    data = make_data()
    with pytest.raises(error, match=match):
        CaptioningSolver(make_model(data), data, **kwargs)


def test_bad_data():
    data = make_data()
    with pytest.raises(TypeError, match='data'):
        CaptioningSolver(make_model(data), [1, 2])
    incomplete = {k: v for k, v in data.items() if k != 'train_features'}
    with pytest.raises(ValueError, match='train_features'):
        CaptioningSolver(make_model(data), incomplete)
    no_val = {k: v for k, v in data.items() if not k.startswith('val_')}
    CaptioningSolver(make_model(data), no_val, verbose=False)  # default: no validation, so no val split needed
    with pytest.raises(ValueError, match='val_captions'):
        CaptioningSolver(make_model(data), no_val, num_val_images=5)


def test_seed_makes_runs_identical_and_val_subset_leaves_global_rng_alone():
    data = make_data()
    runs = []
    for init_seed in (1, 2):  # different initial global states: the seed must override them
        model = make_model(data, seed=0)
        np.random.seed(init_seed)
        before = np.random.get_state()[1].copy()
        solver = CaptioningSolver(model, data, update_rule='adam', batch_size=10, num_epochs=2, seed=5,
                                  verbose=False, num_val_images=4)
        assert np.array_equal(np.random.get_state()[1], before)  # choosing the val subset used its own rng
        solver.train()
        runs.append((solver.loss_history, copy_params(model.params), solver.val_image_ids))
    assert runs[0][0] == runs[1][0]
    assert_params_equal(runs[0][1], runs[1][1])
    assert np.array_equal(runs[0][2], runs[1][2])
    assert runs[0][2].size == 4 and np.all(np.diff(runs[0][2]) > 0)
    # Without a seed the subset is still fixed from run to run.
    unseeded = [CaptioningSolver(make_model(data), data, verbose=False, num_val_images=3).val_image_ids
                for _ in range(2)]
    assert np.array_equal(unseeded[0], unseeded[1]) and unseeded[0].size == 3


def test_train_again_after_the_run_is_complete_warns():
    data = make_data()
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=1, **quiet())
    solver.train()
    with pytest.warns(UserWarning, match='nothing to do'):
        solver.train()
    assert len(solver.loss_history) == 4
    solver.num_epochs = 2  # extending the run trains one more epoch
    solver.train()
    assert len(solver.loss_history) == 8 and solver.epoch == 2


# --------------------------------------------------------------------------------- gradient clipping

def test_clip_grad_norm_scales_to_the_limit():
    rng = np.random.default_rng(0)
    grads = {'a': rng.standard_normal((3, 4)), 'b': rng.standard_normal(5).astype(np.float32),
             'c': np.array(2.0)}
    originals = copy_params(grads)
    norm = math.sqrt(sum(float(x) ** 2 for g in grads.values() for x in np.ravel(g)))
    clipped, reported = clip_grad_norm(grads, norm / 4)
    assert reported == pytest.approx(norm, rel=1e-12)
    clipped_norm = math.sqrt(sum(float(x) ** 2 for g in clipped.values() for x in np.ravel(g)))
    assert clipped_norm == pytest.approx(norm / 4, rel=1e-6)
    for k in grads:
        assert clipped[k].dtype == grads[k].dtype
        np.testing.assert_allclose(clipped[k], grads[k] / 4, rtol=1e-6)  # same direction
        assert np.array_equal(grads[k], originals[k])  # inputs untouched
    same, reported = clip_grad_norm(grads, norm * 2)
    assert reported == pytest.approx(norm, rel=1e-12)
    for k in grads:
        assert np.array_equal(same[k], grads[k])
    with pytest.raises(ValueError, match='max_norm'):
        clip_grad_norm(grads, 0.0)


def test_solver_applies_grad_clip_to_the_update():
    data = make_data(num_train=10)
    grad = np.array([3.0, 4.0])  # norm 5
    model = ConstantGradModel(grad)
    solver = CaptioningSolver(model, data, update_rule='sgd', optim_config={'learning_rate': 1.0},
                              batch_size=10, num_epochs=1, grad_clip=1.0, **quiet())
    solver.train()
    np.testing.assert_allclose(model.params['w'], [-0.6, -0.8], rtol=1e-12)


# --------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip(tmp_path):
    data = make_data()
    model = make_model(data)
    name = str(tmp_path / 'run')
    solver = CaptioningSolver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-2},
                              lr_decay=0.9, batch_size=10, num_epochs=2, seed=0, checkpoint_name=name,
                              verbose=False, num_val_images=4)
    solver.train()
    path = name + '.npz'
    assert checkpoint_path(name) == path and os.path.exists(path)
    assert os.listdir(tmp_path) == ['run.npz']  # no temporary files left
    rng_keys = np.random.get_state()[1]
    ckpt = load_checkpoint(path)
    meta = ckpt['meta']
    assert_params_equal(ckpt['params'], model.params)
    assert_params_equal(ckpt['best_params'], solver.best_params)
    for p in model.params:
        saved, live = ckpt['optim_configs'][p], solver.optim_configs[p]
        assert sorted(saved) == sorted(live)
        assert np.array_equal(saved['m'], live['m']) and np.array_equal(saved['v'], live['v'])
        assert saved['t'] == live['t'] == 8
        assert saved['learning_rate'] == live['learning_rate'] == pytest.approx(1e-2 * 0.9 ** 2)
    assert meta['epoch'] == 2 and meta['iteration'] == 8
    assert meta['loss_history'] == solver.loss_history
    assert meta['val_history'] == solver.val_history
    assert meta['best_val_score'] == solver.best_val_cider
    assert meta['config']['update_rule'] == 'adam' and meta['config']['seed'] == 0
    assert meta['config']['num_val_images'] == 4
    assert meta['model_config']['word_to_idx'] == data['word_to_idx']
    assert meta['extra']['word_to_idx'] == data['word_to_idx']
    assert np.array_equal(ckpt['rng_state'][1], rng_keys)
    assert np.array_equal(ckpt['extra']['val_image_ids'], solver.val_image_ids)
    # The vocabulary is stored as UTF-8 JSON, not escaped.
    with np.load(path, allow_pickle=False) as raw:
        text = raw['__meta__'].tobytes().decode('utf-8')
    assert '"café"' in text


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    data = make_data()
    name = str(tmp_path / 'run')
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=1, checkpoint_name=name,
                              **quiet())
    solver.train()
    before = open(name + '.npz', 'rb').read()
    solver.model.params['Wx'] = solver.model.params['Wx'] + 1  # something new to save

    def broken_savez(f, **arrays):
        f.write(b'PK\x03\x04 half a zip file')
        raise OSError('disk full')

    monkeypatch.setattr(np, 'savez', broken_savez)
    with pytest.raises(OSError, match='disk full'):
        solver.save_checkpoint()
    assert open(name + '.npz', 'rb').read() == before
    assert os.listdir(tmp_path) == ['run.npz']


def test_checkpoint_every_iterations_at_epoch_ends_and_at_the_end(tmp_path):
    data = make_data()
    name = str(tmp_path / 'run')
    written = []
    solver = CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=2, checkpoint_name=name,
                              checkpoint_every=3, **quiet())
    save = solver.save_checkpoint
    solver.save_checkpoint = lambda path=None: written.append(solver.iteration) or save(path)
    solver.train()
    assert written == [3, 4, 6, 8]  # every 3 iterations and at every epoch end (4 iterations per epoch)
    assert load_checkpoint(name + '.npz')['meta']['iteration'] == 8


def test_no_checkpoint_without_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = make_data()
    CaptioningSolver(make_model(data), data, batch_size=10, num_epochs=1, **quiet()).train()
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------- resuming

def run_options(**kwargs):
    options = dict(update_rule='adam', optim_config={'learning_rate': 2e-2}, lr_decay=0.9,
                   batch_size=10, grad_clip=5.0, seed=7, verbose=False, num_val_images=4)
    options.update(kwargs)
    return options


@pytest.mark.filterwarnings('ignore:.*same caption')  # a model this small often repeats itself
def test_resumed_training_is_bit_identical(tmp_path):
    data = make_data()
    full_model = make_model(data, seed=0)
    full = CaptioningSolver(full_model, data, num_epochs=4, **run_options())
    full.train()

    name = str(tmp_path / 'half')
    first = CaptioningSolver(make_model(data, seed=0), data, num_epochs=2, checkpoint_name=name,
                             **run_options())
    first.train()
    np.random.seed(12345)  # whatever happens to the global generator in between must not matter
    resumed_model = make_model(data, seed=99)  # different initial weights: all must come from the file
    resumed = CaptioningSolver(resumed_model, data, num_epochs=4, resume_from=name + '.npz',
                               **run_options())
    assert resumed.epoch == 2 and resumed.iteration == 8
    resumed.train()

    assert_params_equal(resumed_model.params, full_model.params)
    assert resumed.loss_history == full.loss_history
    assert resumed.val_history == full.val_history
    assert len(resumed.val_history) == 4
    assert resumed.best_val_cider == full.best_val_cider
    assert_params_equal(resumed.best_params, full.best_params)
    for p in full_model.params:
        for key in ('m', 'v'):
            assert np.array_equal(resumed.optim_configs[p][key], full.optim_configs[p][key])
        assert resumed.optim_configs[p]['t'] == full.optim_configs[p]['t'] == 16
        assert resumed.optim_configs[p]['learning_rate'] == full.optim_configs[p]['learning_rate']


@pytest.mark.filterwarnings('ignore:.*same caption')
def test_resume_after_a_crash_in_the_middle_of_an_epoch(tmp_path):
    data = make_data()
    full_model = make_model(data, seed=0)
    full = CaptioningSolver(full_model, data, num_epochs=3, **run_options(update_rule='sgd_momentum'))
    full.train()

    name = str(tmp_path / 'crash')

    def crash(wrapper, features, captions):
        raise Crash('power cut')

    crashing = FailingModel(make_model(data, seed=0), fail_at=8, action=crash)
    solver = ArmedSolver(crashing, data, num_epochs=3, checkpoint_name=name, checkpoint_every=3,
                              **run_options(update_rule='sgd_momentum'))
    with pytest.raises(Crash):
        solver.train()
    assert load_checkpoint(name + '.npz')['meta']['iteration'] == 6  # mid-epoch (4 iterations per epoch)

    resumed_model = make_model(data, seed=3)
    # Without a seed: the random state and the val subset must come from the checkpoint.
    resumed = CaptioningSolver(resumed_model, data, num_epochs=3, resume_from=name + '.npz',
                               **run_options(update_rule='sgd_momentum', seed=None))
    assert np.array_equal(resumed.val_image_ids, full.val_image_ids)
    resumed.train()
    assert_params_equal(resumed_model.params, full_model.params)
    assert resumed.loss_history == full.loss_history
    assert resumed.val_history == full.val_history


def test_resume_with_more_epochs_extends_the_run(tmp_path):
    data = make_data()
    name = str(tmp_path / 'run')
    CaptioningSolver(make_model(data), data, num_epochs=1, checkpoint_name=name, **run_options()).train()
    resumed = CaptioningSolver(make_model(data), data, num_epochs=2, resume_from=name + '.npz',
                               **run_options())
    resumed.train()
    assert len(resumed.loss_history) == 8 and resumed.epoch == 2


def test_resume_refuses_another_model_or_rule(tmp_path):
    data = make_data()
    name = str(tmp_path / 'run')
    CaptioningSolver(make_model(data), data, num_epochs=1, checkpoint_name=name, **run_options()).train()
    path = name + '.npz'
    # Named by the model's configuration, with both values (issue 20), not by every array's shape.
    with pytest.raises(ValueError, match='hidden_dim [0-9]+ in the checkpoint, 8 here') as e:
        CaptioningSolver(make_model(data, hidden_dim=8), data, resume_from=path, **run_options())
    assert 'shape' not in str(e.value)
    other_words = WORDS[:4] + list(reversed(WORDS[4:]))  # same size, other vocabulary
    other = make_data(words=other_words)
    with pytest.raises(ValueError, match='word_to_idx'):
        CaptioningSolver(make_model(other), other, resume_from=path, **run_options())
    with pytest.raises(ValueError, match='update_rule'):
        CaptioningSolver(make_model(data), data, resume_from=path, **run_options(update_rule='rmsprop'))
    with pytest.raises(ValueError, match='batch_size'):
        CaptioningSolver(make_model(data), data, resume_from=path, **run_options(batch_size=5))
    with pytest.raises(FileNotFoundError):
        CaptioningSolver(make_model(data), data, resume_from=str(tmp_path / 'missing.npz'), **run_options())


def test_init_from_loads_only_the_weights(tmp_path):
    data = make_data()
    name = str(tmp_path / 'run')
    trained = CaptioningSolver(make_model(data), data, num_epochs=1, checkpoint_name=name, **run_options())
    trained.train()
    saved = copy_params(trained.model.params)

    model = make_model(data, seed=42)
    solver = CaptioningSolver(model, data, num_epochs=1, init_from=name + '.npz', **run_options())
    assert_params_equal(model.params, saved)
    assert solver.epoch == 0 and solver.iteration == 0 and solver.loss_history == []
    assert all(c == {'learning_rate': 2e-2} for c in solver.optim_configs.values())  # fresh optimizer
    solver.train()
    assert len(solver.loss_history) == 4 and solver.optim_configs['Wx']['t'] == 4

    # A model archive (CaptioningRNN.save) works as well.
    archive = str(tmp_path / 'model.npz')
    trained.model.save(archive)
    model = make_model(data, seed=43)
    CaptioningSolver(model, data, init_from=archive, **run_options())
    assert_params_equal(model.params, saved)
    with pytest.raises(ValueError, match='shape'):
        CaptioningSolver(make_model(data, hidden_dim=9), data, init_from=archive, **run_options())


# ------------------------------------------------------------------------------------ divergence stop

def test_nan_loss_stops_with_the_iteration_and_keeps_the_checkpoint(tmp_path):
    data = make_data()
    name = str(tmp_path / 'run')
    path = name + '.npz'
    seen = {}

    def nan_loss(wrapper, features, captions):
        seen['checkpoint'] = open(path, 'rb').read()
        seen['params'] = copy_params(wrapper.params)
        loss, grads = wrapper.model.loss(features, captions)
        return float('nan'), grads

    model = FailingModel(make_model(data), fail_at=7, action=nan_loss)
    solver = ArmedSolver(model, data, num_epochs=3, checkpoint_name=name, **run_options())
    with pytest.raises(TrainingDivergedError, match='iteration 7') as info:
        solver.train()
    assert isinstance(info.value, FloatingPointError)
    assert info.value.iteration == 7 and info.value.checkpoint == path
    assert path in str(info.value)
    assert open(path, 'rb').read() == seen['checkpoint']
    assert load_checkpoint(path)['meta']['iteration'] == 4
    assert_params_equal(model.params, seen['params'])  # the bad step changed nothing
    assert len(solver.loss_history) == 6 and solver.iteration == 6
    assert os.listdir(tmp_path) == ['run.npz']


def test_infinite_gradient_stops_and_names_the_parameter():
    data = make_data()

    def inf_grad(wrapper, features, captions):
        loss, grads = wrapper.model.loss(features, captions)
        grads['Wh'] = grads['Wh'].copy()
        grads['Wh'][0, 0] = np.inf
        return loss, grads

    model = FailingModel(make_model(data), fail_at=3, action=inf_grad)
    solver = ArmedSolver(model, data, num_epochs=1, **run_options())
    with pytest.raises(TrainingDivergedError, match=r"iteration 3.*'Wh'"):
        solver.train()
    assert all(np.all(np.isfinite(w)) for w in model.params.values())


# ------------------------------------------------------------------------------------------ validation

def test_val_history_matches_an_independent_evaluation():
    data = make_data()
    model = make_model(data)
    solver = CaptioningSolver(model, data, update_rule='adam', optim_config={'learning_rate': 1e-2},
                              batch_size=4, num_epochs=2, seed=1, verbose=False, num_val_images=5)
    solver.train()
    assert [h['epoch'] for h in solver.val_history] == [1, 2]
    assert [h['iteration'] for h in solver.val_history] == [10, 20]
    last = solver.val_history[-1]
    ids = solver.val_image_ids
    assert ids.size == 5 and last['num_val_images'] == 5
    assert last['train_loss'] == pytest.approx(np.mean(solver.loss_history[10:]), rel=1e-12)

    # The final entry was computed with the final parameters: redo it in one batch.
    rows = np.flatnonzero(np.isin(data['val_image_idxs'], ids))
    loss, _ = model.loss(data['val_features'][data['val_image_idxs'][rows]], data['val_captions'][rows])
    assert last['val_loss'] == pytest.approx(float(loss), rel=1e-5)
    sampled = model.sample(data['val_features'][ids])
    candidates = {int(i): decode(row, data['idx_to_word']) for i, row in zip(ids, sampled)}
    references = {}
    for r in rows:
        references.setdefault(int(data['val_image_idxs'][r]), []).append(
            decode(data['val_captions'][r][1:], data['idx_to_word']))
    expected = score_captions(references, candidates)
    for key in ('Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'CIDEr'):
        assert last[key] == pytest.approx(expected[key], abs=1e-12)
    assert solver.best_val_cider == max(h['CIDEr'] for h in solver.val_history)


def test_best_params_are_those_of_the_best_cider_epoch():
    data = make_data(num_train=20, num_val_images=4, captions_per_val_image=2)
    snapshots = []

    def sample(model, features):
        # Perfect captions (the first reference of each image) only at the second validation.
        snapshots.append(model.params['w'].copy())
        n = features.shape[0]
        if len(snapshots) != 2:
            return np.tile(np.array([4, 2, 0], dtype=np.int32), (n, 1))
        ids = [int(np.flatnonzero((data['val_features'] == f).all(axis=1))[0]) for f in features]
        rows = reversed(list(enumerate(data['val_image_idxs'])))  # so the first row of an image wins
        first = {int(i): data['val_captions'][r, 1:] for r, i in rows}
        return np.stack([first[i] for i in ids])

    model = ConstantGradModel(np.ones(3), sample_fn=sample)
    solver = CaptioningSolver(model, data, update_rule='sgd', batch_size=10, num_epochs=3, verbose=False,
                              num_val_images=4)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # epochs 1 and 3 repeat one caption; tested elsewhere
        solver.train()
    ciders = [h['CIDEr'] for h in solver.val_history]
    assert ciders[1] > ciders[0] and ciders[1] > ciders[2]
    assert solver.best_val_cider == ciders[1]
    assert np.array_equal(solver.best_params['w'], snapshots[1])
    assert not np.array_equal(solver.best_params['w'], model.params['w'])


def test_warning_when_most_val_captions_are_the_same(capsys):
    data = make_data(num_train=20)
    same = lambda model, features: np.tile(np.array([5, 7, 8, 2], dtype=np.int32), (features.shape[0], 1))
    solver = CaptioningSolver(ConstantGradModel(np.ones(2), sample_fn=same), data, batch_size=10,
                              num_epochs=2, num_val_images=6)
    with pytest.warns(UserWarning, match="same caption 'dog on the' to 6 of 6 val images") as record:
        solver.train()
    assert len([w for w in record if 'same caption' in str(w.message)]) == 1  # once, not every epoch
    assert all(h['most_common_fraction'] == 1.0 for h in solver.val_history)
    assert solver.val_history[0]['most_common_caption'] == 'dog on the'
    assert capsys.readouterr().out.count('same caption for 100% of images') == 2


def test_no_warning_when_captions_differ():
    data = make_data(num_train=20)

    def distinct(model, features):
        n = features.shape[0]
        return np.stack([np.array([4 + i, 2, 0], dtype=np.int32) for i in range(n)])

    solver = CaptioningSolver(ConstantGradModel(np.ones(2), sample_fn=distinct), data, batch_size=10,
                              num_epochs=1, num_val_images=6, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        solver.train()
    assert solver.val_history[0]['most_common_fraction'] == pytest.approx(1 / 6)


# ------------------------------------------------------------------------------- the generic Solver

class LeastSquares:
    """A linear model y = x w; loss 0.5 * mean squared error over the minibatch."""

    def __init__(self, D_in):
        self.params = {'w': np.zeros(D_in)}

    def loss(self, x, y):
        err = x @ self.params['w'] - y  # (N,)
        return 0.5 * float(np.mean(err ** 2)), {'w': x.T @ err / x.shape[0]}


class LeastSquaresSolver(Solver):
    """A solver for a language-model-like task that owns its generator (no global np.random)."""

    def __init__(self, model, x, y, **kwargs):
        self.x, self.y = x, y
        super().__init__(model, **kwargs)

    def _setup(self):
        self.rng = np.random.default_rng(self.seed)

    def _num_train(self):
        return self.x.shape[0]

    def _sample_batch(self):
        idx = self.rng.integers(0, self.x.shape[0], size=self.batch_size)
        return self.x[idx], self.y[idx]


def test_generic_solver_subclass_trains_and_resumes_its_own_generator(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    y = x @ w_true
    options = dict(update_rule='sgd_momentum', optim_config={'learning_rate': 0.1}, batch_size=8, seed=3,
                   verbose=False)
    full = LeastSquaresSolver(LeastSquares(3), x, y, num_epochs=6, **options)
    full.train()
    assert len(full.loss_history) == 6 * 8
    assert np.mean(full.loss_history[-8:]) < 0.05 * np.mean(full.loss_history[:8])

    name = str(tmp_path / 'ls')
    LeastSquaresSolver(LeastSquares(3), x, y, num_epochs=3, checkpoint_name=name, **options).train()
    resumed = LeastSquaresSolver(LeastSquares(3), x, y, num_epochs=6, resume_from=name + '.npz', **options)
    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert np.array_equal(resumed.model.params['w'], full.model.params['w'])
    meta = load_archive(name + '.npz')[1]
    assert meta['generator_state']['bit_generator'] == 'PCG64'
    assert meta['model_config'] is None


def test_bare_solver_needs_the_hooks():
    with pytest.raises(NotImplementedError, match='_num_train'):
        Solver(LeastSquares(2))


# ---------------------------------------------------------------------------------------- classic surface

class EchoScoresModel:
    """Scores each step's input word highest: it predicts that every word repeats."""

    def __init__(self, V):
        self.params = {'w': np.zeros(1)}
        self.V = V

    def loss(self, features, captions):
        return 0.0, {'w': np.zeros(1)}

    def scores(self, features, captions):
        inputs = captions[:, :-1]                                      # (N, T - 1)
        return np.eye(self.V)[inputs] + 0.01 * features[:, :1, None]   # (N, T - 1, V)


def test_classic_accuracy_attributes():
    data = make_data()
    solver = CaptioningSolver(make_model(data), data, **quiet(num_epochs=1, batch_size=10))
    solver.train()
    assert solver.train_acc_history == [] and solver.val_acc_history == [] and solver.best_val_acc == 0


def test_check_accuracy_counts_correct_next_words():
    data = make_data()
    # Some captions repeat a word, so the echo model gets a known share of the words right.
    captions = data['val_captions'].copy()
    captions[::2, 2] = captions[::2, 1]
    features = data['val_features'][data['val_image_idxs']]
    solver = CaptioningSolver(EchoScoresModel(len(WORDS)), data, **quiet())
    targets, inputs = captions[:, 1:], captions[:, :-1]
    counted = targets != 0
    expected = np.sum((targets == inputs) & counted) / np.sum(counted)
    assert expected > 0
    for batch_size in (1, 4, 100):
        assert solver.check_accuracy(features, captions, batch_size=batch_size) == pytest.approx(expected)
    np.random.seed(3)
    mask = np.random.choice(len(captions), 5)
    np.random.seed(3)
    sub = solver.check_accuracy(features, captions, num_samples=5)
    t, i = captions[mask, 1:], captions[mask, :-1]
    assert sub == pytest.approx(np.sum((t == i) & (t != 0)) / np.sum(t != 0))


def test_check_accuracy_of_a_captioning_rnn_uses_the_scores_of_its_loss():
    data = make_data()
    model = make_model(data)
    captions = data['train_captions']
    features = data['train_features'][data['train_image_idxs']]
    scores = model.scores(features, captions).astype(np.float64)   # (N, T - 1, V)
    targets = captions[:, 1:]
    counted = targets != 0
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_p, targets[..., None], axis=-1)[..., 0]
    assert -np.sum(picked * counted) / len(captions) == pytest.approx(model.loss(features, captions)[0], rel=1e-5)
    solver = CaptioningSolver(model, data, **quiet())
    expected = np.sum((scores.argmax(axis=-1) == targets) & counted) / np.sum(counted)
    assert solver.check_accuracy(features, captions) == pytest.approx(expected)


def test_check_accuracy_errors():
    data = make_data()

    class NoScores:
        params = {'w': np.zeros(1)}

        def loss(self, features, captions):
            return 0.0, {'w': np.zeros(1)}

    solver = CaptioningSolver(NoScores(), data, **quiet())
    with pytest.raises(TypeError, match='scores'):
        solver.check_accuracy(data['val_features'], data['val_captions'][:6])
    solver = CaptioningSolver(make_model(data), data, **quiet())
    with pytest.raises(ValueError, match='X'):
        solver.check_accuracy(data['val_features'], data['val_captions'])  # 6 images, 18 captions
