// Added by chatd to the Socket.IO Admin UI's page, before the UI's own scripts: the UI keeps
// its server address in localStorage only, so the first visit gets this server's address and
// admin namespace there, and the login form comes pre-filled. A later choice of the admin is
// kept.
(function () {
  try {
    if (!localStorage.getItem('server_url')) {
      localStorage.setItem('server_url', location.origin);
      localStorage.setItem('namespace', '/admin');
      localStorage.setItem('path', '/socket.io');
    }
  } catch (e) {
    // No storage (private mode, blocked): the form starts empty.
  }
})();
