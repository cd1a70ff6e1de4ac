"use strict";
// The chat client is built in web/; until then this page only checks the connection.
const app = document.getElementById("app");
const socket = io({ autoConnect: true });
socket.on("connect", () => { app.textContent = "Connected to chatd."; });
socket.on("disconnect", () => { app.textContent = "Disconnected."; });
