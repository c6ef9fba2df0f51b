// Sign in (POST /auth/login), or create a user first (POST /auth/register) where registration
// is open.

import * as api from '../api.js';
import { h, field, form } from '../ui.js';

export function render(main, ctx) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const signIn = form(
    { id: 'signin-form', 'aria-label': 'Sign in' },
    [field('Email', email), field('Password', password)],
    'Sign in',
    async () => {
      api.setSession(await api.post('/auth/login', { email: email.value, password: password.value }));
      await ctx.signedIn();
    },
  );

  const newEmail = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const newPassword = h('input', { type: 'password', name: 'new-password', autocomplete: 'new-password', required: true });
  const register = form(
    { id: 'register-form', 'aria-label': 'Create a user' },
    [field('Email', newEmail), field('Password', newPassword, 'at least 12 characters')],
    'Create user and sign in',
    async () => {
      await api.post('/auth/register', { email: newEmail.value, password: newPassword.value });
      api.setSession(await api.post('/auth/login', { email: newEmail.value, password: newPassword.value }));
      await ctx.signedIn();
    },
  );

  main.append(
    h('h1', {}, 'Sign in to tgfleet'),
    h('div', { class: 'grid' },
      h('section', {}, h('h2', {}, 'Sign in'), signIn),
      h('section', {}, h('h2', {}, 'New here?'), h('p', { class: 'muted small' }, 'Create a user (the first admin is made with `tgfleet users create --email … --role admin`).'), register),
    ),
  );
  email.focus();
}
